//! Random FusedElementwise programs and broadcast shapes, shared by the CPU
//! and GPU tests of the op.

use cellm_ir::ops::{BinaryOp, FusedElementwise, Instr, UnaryOp};
use rand::rngs::StdRng;
use rand::Rng;

/// A random program over `n_in` inputs that reads every input and uses every
/// instruction kind, with operands kept in each function's domain (Sqrt/Log
/// of |a| (+1), Div/Reciprocal by |b| + 1, Exp of a tanh, Pow of |a| + 0.5)
/// so both sides compute finite values of modest size.
pub fn random_program(r: &mut StdRng, n_in: usize) -> (FusedElementwise, bool) {
    let mut p: Vec<Instr> = Vec::new();
    let mut transcendental = false;
    fn push(p: &mut Vec<Instr>, n_in: usize, i: Instr) -> u16 {
        p.push(i);
        (n_in + p.len() - 1) as u16
    }
    let un = |op| move |x| Instr::Unary { op, x };
    let bi = |op| move |a, b| Instr::Binary { op, a, b };
    let mut pool: Vec<u16> = (0..n_in as u16).collect();
    let mut used = vec![false; n_in + 512];
    let steps = r.random_range(3..5);
    for _ in 0..steps {
        let a = pool[r.random_range(0..pool.len())];
        let b = pool[r.random_range(0..pool.len())];
        let abs1 = |p: &mut Vec<Instr>, x: u16, c: f32| {
            let ax = push(p, n_in, un(UnaryOp::Abs)(x));
            let k = push(p, n_in, Instr::Const(c));
            push(p, n_in, bi(BinaryOp::Add)(ax, k))
        };
        let v = match r.random_range(0..11) {
            0 => push(&mut p, n_in, bi(BinaryOp::Add)(a, b)),
            1 => push(&mut p, n_in, bi(BinaryOp::Sub)(a, b)),
            2 => push(&mut p, n_in, bi(BinaryOp::Mul)(a, b)),
            3 => {
                let d = abs1(&mut p, b, 1.0);
                push(&mut p, n_in, bi(BinaryOp::Div)(a, d))
            }
            4 => {
                let ax = push(&mut p, n_in, un(UnaryOp::Abs)(a));
                push(&mut p, n_in, un(UnaryOp::Sqrt)(ax))
            }
            5 => {
                transcendental = true;
                let d = abs1(&mut p, a, 1.0);
                push(&mut p, n_in, un(UnaryOp::Log)(d))
            }
            6 => {
                transcendental = true;
                let t = push(&mut p, n_in, un(UnaryOp::Tanh)(a));
                push(&mut p, n_in, un(UnaryOp::Exp)(t))
            }
            7 => {
                let d = abs1(&mut p, a, 1.0);
                push(&mut p, n_in, un(UnaryOp::Reciprocal)(d))
            }
            8 => {
                transcendental = true;
                let base = abs1(&mut p, a, 0.5);
                let e = if r.random_bool(0.5) {
                    let c = [2.0, 0.5, -1.0, 3.0][r.random_range(0..4)];
                    push(&mut p, n_in, Instr::Const(c))
                } else {
                    push(&mut p, n_in, un(UnaryOp::Sin)(b))
                };
                push(&mut p, n_in, bi(BinaryOp::Pow)(base, e))
            }
            9 => {
                let op = [
                    UnaryOp::Neg,
                    UnaryOp::Relu,
                    UnaryOp::Sigmoid,
                    UnaryOp::Erf,
                    UnaryOp::Cos,
                ][r.random_range(0..5)];
                transcendental |= matches!(op, UnaryOp::Sigmoid | UnaryOp::Erf | UnaryOp::Cos);
                push(&mut p, n_in, un(op)(a))
            }
            _ => {
                let k = push(&mut p, n_in, Instr::Const(r.random_range(-2.0..2.0)));
                push(&mut p, n_in, bi(BinaryOp::Mul)(k, a))
            }
        };
        pool.push(v);
    }
    // Every input and step reaches the output, so its shape is the inputs'
    // broadcast.
    for ins in &p {
        match *ins {
            Instr::Const(_) => {}
            Instr::Unary { x, .. } => used[x as usize] = true,
            Instr::Binary { a, b, .. } => {
                used[a as usize] = true;
                used[b as usize] = true;
            }
        }
    }
    let last = *pool.last().unwrap_or(&0);
    let mut acc = last;
    for &v in &pool {
        if !used[v as usize] && v != last {
            acc = push(&mut p, n_in, bi(BinaryOp::Add)(acc, v));
        }
    }
    if p.is_empty() {
        push(&mut p, n_in, un(UnaryOp::Neg)(acc));
    }
    (FusedElementwise { program: p }, transcendental)
}

/// Shapes of `n` inputs broadcasting to `out` (some dims 1, some ranks lower).
pub fn broadcast_shapes_for(r: &mut StdRng, out: &[usize], n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|k| {
            if k == 0 {
                return out.to_vec();
            }
            let drop = r.random_range(0..=out.len());
            out[drop..]
                .iter()
                .map(|&d| if r.random_bool(0.3) { 1 } else { d })
                .collect()
        })
        .collect()
}
