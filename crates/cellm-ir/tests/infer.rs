//! Shape and dtype inference on hand-built graphs.

use cellm_ir::ops::*;
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use rand::{Rng, SeedableRng};

fn sym(s: &str) -> Dim {
    Dim::Sym(s.to_string())
}
fn k(n: usize) -> Dim {
    Dim::Known(n)
}
fn f32s(shape: Vec<Dim>) -> Fact {
    Fact::new(DType::F32, Some(shape))
}
fn i64s(v: Vec<i64>) -> Tensor {
    Tensor::from_vec(vec![v.len()], v)
}

/// A graph input or a constant.
enum Arg {
    In(Fact),
    Const(Tensor),
    Omitted,
}

/// Infers the facts of one node's `n_out` outputs.
fn infer(op: Op, args: Vec<Arg>, n_out: usize) -> anyhow::Result<Vec<Option<Fact>>> {
    let mut g = Graph::new("t");
    let mut inputs = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        inputs.push(match a {
            Arg::In(f) => Some(g.add_input(&format!("in{i}"), f)),
            Arg::Const(t) => Some(g.add_initializer(&format!("c{i}"), t)),
            Arg::Omitted => None,
        });
    }
    let outputs: Vec<_> = (0..n_out)
        .map(|i| Some(g.value(&format!("out{i}"))))
        .collect();
    g.add_node(Node {
        name: "n".into(),
        op,
        inputs,
        outputs: outputs.clone(),
    })?;
    g.infer_facts()?;
    Ok(outputs
        .into_iter()
        .map(|v| v.and_then(|v| g.values[v].fact.clone()))
        .collect())
}

fn infer1(op: Op, args: Vec<Arg>) -> anyhow::Result<Fact> {
    infer(op, args, 1)?
        .remove(0)
        .ok_or_else(|| anyhow::anyhow!("no fact"))
}

fn shape1(op: Op, args: Vec<Arg>) -> Vec<Dim> {
    infer1(op, args)
        .expect("inference failed")
        .shape
        .expect("rank unknown")
}

fn err_of(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    println!("seed {seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

#[test]
fn reshape_zero_and_minus_one_keep_symbols() {
    let x = || Arg::In(f32s(vec![sym("batch"), sym("seq"), k(32)]));
    let r = || Op::Reshape(Reshape { allowzero: false });
    assert_eq!(
        shape1(r(), vec![x(), Arg::Const(i64s(vec![0, 0, 4, 8]))]),
        vec![sym("batch"), sym("seq"), k(4), k(8)]
    );
    assert_eq!(
        shape1(r(), vec![x(), Arg::Const(i64s(vec![0, 0, 2, -1]))]),
        vec![sym("batch"), sym("seq"), k(2), k(16)]
    );
    assert_eq!(
        shape1(r(), vec![x(), Arg::Const(i64s(vec![-1, 32]))]),
        vec![sym("batch*seq"), k(32)]
    );
    assert_eq!(
        shape1(r(), vec![x(), Arg::Const(i64s(vec![0, -1]))]),
        vec![sym("batch"), sym("32*seq")]
    );
    // The vision encoder folds [batch, images, 3, H, W] into images.
    let img = Arg::In(f32s(vec![
        sym("batch_size"),
        sym("num_images"),
        k(3),
        k(512),
        k(512),
    ]));
    assert_eq!(
        shape1(r(), vec![img, Arg::Const(i64s(vec![-1, 3, 512, 512]))]),
        vec![sym("batch_size*num_images"), k(3), k(512), k(512)]
    );
    // A product folded earlier unfolds again.
    let folded = Arg::In(f32s(vec![sym("batch*seq"), k(32)]));
    assert_eq!(
        shape1(r(), vec![folded, Arg::Const(i64s(vec![-1, 4, 8]))]),
        vec![sym("batch*seq"), k(4), k(8)]
    );
    // `?` never cancels against another `?`.
    let unknown = Arg::In(f32s(vec![Dim::unknown(), k(32)]));
    assert_eq!(
        shape1(r(), vec![unknown, Arg::Const(i64s(vec![-1, 32]))]),
        vec![Dim::unknown(), k(32)]
    );
    // Runtime shape tensor of known length: rank only.
    let rt = Arg::In(Fact::new(DType::I64, Some(vec![k(3)])));
    assert_eq!(shape1(r(), vec![x(), rt]), vec![Dim::unknown(); 3]);

    let known = || Arg::In(f32s(vec![k(2), k(3)]));
    assert!(
        err_of(infer1(r(), vec![known(), Arg::Const(i64s(vec![4, 2]))])).contains("cannot reshape")
    );
    assert!(
        err_of(infer1(r(), vec![known(), Arg::Const(i64s(vec![4, -1]))]))
            .contains("cannot reshape")
    );
    assert!(
        err_of(infer1(r(), vec![known(), Arg::Const(i64s(vec![-1, -1]))]))
            .contains("more than one -1")
    );
    assert!(
        err_of(infer1(r(), vec![known(), Arg::Const(i64s(vec![0, 0, 0]))]))
            .contains("copies dim 2")
    );
}

#[test]
fn broadcast_of_symbolic_dims() {
    let add = || Op::Binary(Binary { op: BinaryOp::Add });
    let a = f32s(vec![sym("batch"), k(1), sym("seq")]);
    let b = f32s(vec![k(4), k(1)]);
    assert_eq!(
        shape1(add(), vec![Arg::In(a), Arg::In(b)]),
        vec![sym("batch"), k(4), sym("seq")]
    );
    // `?` yields to a name, but not to 1 (the `?` may be the larger one).
    let u = f32s(vec![Dim::unknown(), Dim::unknown()]);
    let n = f32s(vec![sym("batch"), k(1)]);
    assert_eq!(
        shape1(add(), vec![Arg::In(u), Arg::In(n)]),
        vec![sym("batch"), Dim::unknown()]
    );
    let cmp = infer1(
        Op::Binary(Binary { op: BinaryOp::Less }),
        vec![Arg::In(f32s(vec![k(2)])), Arg::In(f32s(vec![k(1)]))],
    )
    .expect("Less");
    assert_eq!(cmp.dtype, DType::Bool);
    assert!(err_of(infer1(
        add(),
        vec![Arg::In(f32s(vec![k(2)])), Arg::In(f32s(vec![k(3)]))]
    ))
    .contains("broadcast"));
    let mixed = infer1(
        add(),
        vec![
            Arg::In(f32s(vec![k(2)])),
            Arg::In(Fact::new(DType::F16, Some(vec![k(2)]))),
        ],
    );
    assert!(err_of(mixed).contains("f16"));
}

#[test]
fn where_checks_dtypes_and_broadcasts() {
    let c = Arg::In(Fact::new(
        DType::Bool,
        Some(vec![sym("b"), k(1), k(1), sym("t")]),
    ));
    let out = infer1(
        Op::Where(Where),
        vec![
            c,
            Arg::Const(Tensor::scalar(0f32)),
            Arg::In(f32s(vec![k(1), k(4), sym("s"), k(1)])),
        ],
    )
    .expect("Where");
    assert_eq!(out, f32s(vec![sym("b"), k(4), sym("s"), sym("t")]));
    let c = Arg::In(Fact::new(DType::Bool, Some(vec![k(2)])));
    let e = infer1(
        Op::Where(Where),
        vec![
            c,
            Arg::Const(Tensor::scalar(0f32)),
            Arg::Const(Tensor::scalar(0i64)),
        ],
    );
    assert!(err_of(e).contains("i64"));
}

#[test]
fn concat_of_empty_and_symbolic_past() {
    let cat = || Op::Concat(Concat { axis: -2 });
    let new = || Arg::In(f32s(vec![sym("batch"), k(2), sym("seq"), k(8)]));
    let empty = Arg::In(f32s(vec![sym("batch"), k(2), k(0), k(8)]));
    assert_eq!(
        shape1(cat(), vec![empty, new()]),
        vec![sym("batch"), k(2), sym("seq"), k(8)]
    );
    let past = Arg::In(f32s(vec![sym("batch"), k(2), sym("past"), k(8)]));
    assert_eq!(
        shape1(cat(), vec![past, new()]),
        vec![sym("batch"), k(2), sym("past+seq"), k(8)]
    );
    // Unknown dims elsewhere are filled in from the other input.
    let unk = Arg::In(f32s(vec![
        Dim::unknown(),
        Dim::unknown(),
        Dim::unknown(),
        Dim::unknown(),
    ]));
    assert_eq!(
        shape1(cat(), vec![new(), unk]),
        vec![sym("batch"), k(2), Dim::unknown(), k(8)]
    );
    let shapes = vec![
        Arg::Const(i64s(vec![1])),
        Arg::Const(i64s(vec![2, 3])),
        Arg::In(Fact::new(DType::I64, Some(vec![k(1)]))),
    ];
    assert_eq!(shape1(Op::Concat(Concat { axis: 0 }), shapes), vec![k(4)]);

    let f16 = Arg::In(Fact::new(
        DType::F16,
        Some(vec![sym("batch"), k(2), sym("seq"), k(8)]),
    ));
    assert!(err_of(infer1(cat(), vec![new(), f16])).contains("f16"));
    assert!(err_of(infer1(cat(), vec![new(), Arg::In(f32s(vec![k(2), k(8)]))])).contains("rank"));
    assert!(err_of(infer1(
        cat(),
        vec![new(), Arg::In(f32s(vec![sym("batch"), k(3), k(1), k(8)]))]
    ))
    .contains("dim 1"));
    assert!(err_of(infer1(Op::Concat(Concat { axis: 4 }), vec![new(), new()])).contains("axis 4"));
}

#[test]
fn matmul_broadcasts_batch_dims_and_checks_k() {
    let mm = || Op::MatMul(MatMul);
    let a = || Arg::In(f32s(vec![sym("b"), k(1), sym("s"), k(32)]));
    assert_eq!(
        shape1(mm(), vec![a(), Arg::In(f32s(vec![k(4), k(32), k(16)]))]),
        vec![sym("b"), k(4), sym("s"), k(16)]
    );
    assert_eq!(
        shape1(mm(), vec![a(), Arg::In(f32s(vec![k(32)]))]),
        vec![sym("b"), k(1), sym("s")]
    );
    assert_eq!(
        shape1(
            mm(),
            vec![Arg::In(f32s(vec![k(32)])), Arg::In(f32s(vec![k(32), k(5)]))]
        ),
        vec![k(5)]
    );
    assert_eq!(
        shape1(
            mm(),
            vec![Arg::In(f32s(vec![k(7)])), Arg::In(f32s(vec![k(7)]))]
        ),
        Vec::<Dim>::new()
    );
    // Random batch shapes against the concrete broadcast rule.
    let mut rng = seeded_rng();
    for _ in 0..50 {
        let rank_a = rng.random_range(0..3);
        let rank_b = rng.random_range(0..3);
        let da: Vec<usize> = (0..rank_a)
            .map(|_| [1, 3][rng.random_range(0..2)])
            .collect();
        let db: Vec<usize> = (0..rank_b)
            .map(|_| [1, 3][rng.random_range(0..2)])
            .collect();
        let mut sa: Vec<Dim> = da.iter().map(|&d| k(d)).collect();
        sa.extend([k(5), k(6)]);
        let mut sb: Vec<Dim> = db.iter().map(|&d| k(d)).collect();
        sb.extend([k(6), k(7)]);
        let mut want: Vec<Dim> = cellm_ir::shape::broadcast_shapes(&da, &db)
            .expect("1/3 dims broadcast")
            .into_iter()
            .map(k)
            .collect();
        want.extend([k(5), k(7)]);
        assert_eq!(
            shape1(mm(), vec![Arg::In(f32s(sa)), Arg::In(f32s(sb))]),
            want
        );
    }
    let e = infer1(mm(), vec![a(), Arg::In(f32s(vec![k(16), k(8)]))]);
    assert!(err_of(e).contains("inner dims differ"));
}

#[test]
fn gather_with_scalar_index_reduces_rank() {
    let g = |axis| Op::Gather(Gather { axis });
    let shape = Arg::In(Fact::new(DType::I64, Some(vec![k(4)])));
    let out = infer1(g(0), vec![shape, Arg::Const(Tensor::scalar(2i64))]).expect("Gather");
    assert_eq!(out, Fact::new(DType::I64, Some(vec![])));
    let table = || Arg::In(f32s(vec![k(49280), k(32)]));
    let ids = Arg::In(Fact::new(DType::I64, Some(vec![sym("batch"), sym("seq")])));
    assert_eq!(
        shape1(g(0), vec![table(), ids]),
        vec![sym("batch"), sym("seq"), k(32)]
    );
    let cols = Arg::Const(Tensor::from_vec(vec![2], vec![0i64, -1]));
    assert_eq!(shape1(g(-1), vec![table(), cols]), vec![k(49280), k(2)]);
    assert!(err_of(infer1(
        g(2),
        vec![table(), Arg::Const(Tensor::scalar(0i64))]
    ))
    .contains("axis 2"));
    assert!(err_of(infer1(
        g(1),
        vec![table(), Arg::Const(Tensor::scalar(32i64))]
    ))
    .contains("out of range"));
}

#[test]
fn squeeze_and_unsqueeze_with_negative_axes() {
    let x = || Arg::In(f32s(vec![sym("b"), sym("s")]));
    let un = || Op::Unsqueeze(Unsqueeze { axes: None });
    assert_eq!(
        shape1(un(), vec![x(), Arg::Const(i64s(vec![-1]))]),
        vec![sym("b"), sym("s"), k(1)]
    );
    assert_eq!(
        shape1(un(), vec![x(), Arg::Const(i64s(vec![0, -1]))]),
        vec![k(1), sym("b"), sym("s"), k(1)]
    );
    let attr = Op::Unsqueeze(Unsqueeze {
        axes: Some(vec![1, -2]),
    });
    assert_eq!(
        shape1(attr, vec![x()]),
        vec![sym("b"), k(1), k(1), sym("s")]
    );
    assert!(err_of(infer1(un(), vec![x(), Arg::Const(i64s(vec![1, 1]))])).contains("repeated"));
    assert!(err_of(infer1(un(), vec![x(), Arg::Const(i64s(vec![3]))])).contains("out of range"));
    // A scalar from a Gather of a shape, unsqueezed back to 1-D.
    let scalar = Arg::In(Fact::new(DType::I64, Some(vec![])));
    assert_eq!(
        shape1(un(), vec![scalar, Arg::Const(i64s(vec![0]))]),
        vec![k(1)]
    );

    let sq = || Op::Squeeze(Squeeze { axes: None });
    let y = || Arg::In(f32s(vec![k(1), sym("b"), k(1)]));
    assert_eq!(
        shape1(sq(), vec![y(), Arg::Const(i64s(vec![-1]))]),
        vec![k(1), sym("b")]
    );
    assert_eq!(shape1(sq(), vec![y(), Arg::Omitted]), vec![sym("b")]);
    assert_eq!(
        shape1(
            Op::Squeeze(Squeeze {
                axes: Some(vec![-3])
            }),
            vec![y()]
        ),
        vec![sym("b"), k(1)]
    );
    let bad = infer1(
        sq(),
        vec![Arg::In(f32s(vec![k(2), k(1)])), Arg::Const(i64s(vec![0]))],
    );
    assert!(err_of(bad).contains("not 1"));
}

#[test]
fn transpose_permutes_and_validates() {
    let x = || Arg::In(f32s(vec![sym("b"), sym("s"), k(4), k(8)]));
    let t = |perm| Op::Transpose(Transpose { perm });
    assert_eq!(
        shape1(t(Some(vec![0, 2, 1, 3])), vec![x()]),
        vec![sym("b"), k(4), sym("s"), k(8)]
    );
    assert_eq!(
        shape1(t(None), vec![x()]),
        vec![k(8), k(4), sym("s"), sym("b")]
    );
    assert!(err_of(infer1(t(Some(vec![0, 1, 1, 3])), vec![x()])).contains("permutation"));
    assert!(err_of(infer1(t(Some(vec![0, 1])), vec![x()])).contains("permutation"));
}

/// Slice length by walking the indices the ONNX reference does.
fn brute_slice_len(n: i64, start: i64, end: i64, step: i64) -> usize {
    if n == 0 {
        return 0;
    }
    let fix = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (mut i, e) = if step > 0 {
        (fix(start).clamp(0, n), fix(end).clamp(0, n))
    } else {
        (fix(start).clamp(0, n - 1), fix(end).clamp(-1, n - 1))
    };
    let mut count = 0;
    while (step > 0 && i < e) || (step < 0 && i > e) {
        count += 1;
        i += step;
    }
    count
}

#[test]
fn slice_with_constant_params_matches_brute_force() {
    let mut rng = seeded_rng();
    let pick = |rng: &mut rand::rngs::StdRng| -> i64 {
        match rng.random_range(0..6) {
            0 => i64::MAX,
            1 => i64::MIN,
            _ => rng.random_range(-12..12),
        }
    };
    for _ in 0..300 {
        let n = rng.random_range(0..10usize);
        let (start, end) = (pick(&mut rng), pick(&mut rng));
        let step = [-3, -2, -1, 1, 2, 3][rng.random_range(0..6)];
        let x = Arg::In(f32s(vec![sym("b"), k(n)]));
        let args = vec![
            x,
            Arg::Const(i64s(vec![start])),
            Arg::Const(i64s(vec![end])),
            Arg::Const(i64s(vec![-1])),
            Arg::Const(i64s(vec![step])),
        ];
        let got = shape1(Op::Slice(Slice), args);
        let want = brute_slice_len(n as i64, start, end, step);
        assert_eq!(
            got,
            vec![sym("b"), k(want)],
            "n {n} start {start} end {end} step {step}"
        );
    }
    // A whole-dim slice keeps the symbol; any other slice of a symbol is unknown.
    let x = || Arg::In(f32s(vec![sym("b"), sym("s"), k(8)]));
    let s = |a: Vec<i64>, b: Vec<i64>| {
        vec![
            x(),
            Arg::Const(i64s(a)),
            Arg::Const(i64s(b)),
            Arg::Const(i64s(vec![1, 2])),
        ]
    };
    assert_eq!(
        shape1(Op::Slice(Slice), s(vec![0, 4], vec![i64::MAX, 6])),
        vec![sym("b"), sym("s"), k(2)]
    );
    assert_eq!(
        shape1(Op::Slice(Slice), s(vec![1, -1], vec![i64::MAX, i64::MAX])),
        vec![sym("b"), Dim::unknown(), k(1)]
    );
    // Runtime ends on a known axis: only that axis becomes unknown.
    let args = vec![
        x(),
        Arg::Const(i64s(vec![0])),
        Arg::In(Fact::new(DType::I64, Some(vec![k(1)]))),
        Arg::Const(i64s(vec![2])),
    ];
    assert_eq!(
        shape1(Op::Slice(Slice), args),
        vec![sym("b"), sym("s"), Dim::unknown()]
    );
    let args = vec![
        x(),
        Arg::Const(i64s(vec![0])),
        Arg::Const(i64s(vec![1])),
        Arg::Const(i64s(vec![5])),
    ];
    assert!(err_of(infer1(Op::Slice(Slice), args)).contains("out of range"));
}

#[test]
fn split_sizes_and_equal_parts() {
    let x = || Arg::In(f32s(vec![sym("b"), k(10)]));
    let outs = infer(
        Op::Split(Split {
            axis: 1,
            split: None,
            num_outputs: 2,
        }),
        vec![x(), Arg::Const(i64s(vec![3, 7]))],
        2,
    )
    .expect("Split");
    assert_eq!(
        outs,
        vec![
            Some(f32s(vec![sym("b"), k(3)])),
            Some(f32s(vec![sym("b"), k(7)]))
        ]
    );
    let outs = infer(
        Op::Split(Split {
            axis: -1,
            split: None,
            num_outputs: 3,
        }),
        vec![x()],
        3,
    )
    .expect("Split");
    let lens: Vec<Dim> = outs
        .into_iter()
        .map(|f| f.and_then(|f| f.shape).expect("shape")[1].clone())
        .collect();
    assert_eq!(lens, vec![k(4), k(4), k(2)]);
    let e = infer(
        Op::Split(Split {
            axis: 1,
            split: Some(vec![3, 3]),
            num_outputs: 2,
        }),
        vec![x()],
        2,
    );
    assert!(err_of(e).contains("sum to 6"));
}

/// Output positions of a 1-D convolution, counted window by window.
fn brute_conv_len(
    n: usize,
    k: usize,
    stride: usize,
    pad0: usize,
    pad1: usize,
    dil: usize,
) -> usize {
    let span = dil * (k - 1) + 1;
    let padded = n + pad0 + pad1;
    (0..padded)
        .step_by(stride)
        .take_while(|&start| start + span <= padded)
        .count()
}

#[test]
fn conv_output_size() {
    let conv = |kernel: usize, stride: usize, pads: Vec<usize>, dil: usize| {
        Op::Conv(Conv {
            kernel_shape: Some(vec![kernel, kernel]),
            strides: vec![stride, stride],
            pads,
            dilations: vec![dil, dil],
            group: 1,
            auto_pad: AutoPad::NotSet,
        })
    };
    let x = Arg::In(f32s(vec![sym("n"), k(3), k(512), k(512)]));
    let w = Arg::Const(Tensor::zeros(DType::F32, vec![32, 3, 16, 16]));
    let b = Arg::Const(Tensor::zeros(DType::F32, vec![32]));
    assert_eq!(
        shape1(conv(16, 16, vec![0; 4], 1), vec![x, w, b]),
        vec![sym("n"), k(32), k(32), k(32)]
    );
    let mut rng = seeded_rng();
    for _ in 0..100 {
        let (n, kk) = (rng.random_range(1..20), rng.random_range(1..5));
        let (stride, dil) = (rng.random_range(1..4), rng.random_range(1..3));
        let (p0, p1) = (rng.random_range(0..3), rng.random_range(0..3));
        let x = Arg::In(f32s(vec![k(1), k(2), k(n), sym("w")]));
        let w = Arg::Const(Tensor::zeros(DType::F32, vec![5, 2, kk, kk]));
        let got = infer1(conv(kk, stride, vec![p0, 0, p1, 0], dil), vec![x, w]);
        if dil * (kk - 1) + 1 > n + p0 + p1 {
            assert!(err_of(got).contains("kernel span"));
            continue;
        }
        let want = brute_conv_len(n, kk, stride, p0, p1, dil);
        assert_eq!(
            got.expect("Conv").shape,
            Some(vec![k(1), k(5), k(want), Dim::unknown()]),
            "n {n} k {kk} s {stride} d {dil} p {p0},{p1}"
        );
    }
    let x = Arg::In(f32s(vec![k(1), k(4), k(8), k(8)]));
    let w = Arg::Const(Tensor::zeros(DType::F32, vec![5, 2, 3, 3]));
    assert!(err_of(infer1(conv(3, 1, vec![0; 4], 1), vec![x, w])).contains("channels"));
}

#[test]
fn mha_outputs_with_and_without_past() {
    let mha = || {
        Op::MultiHeadAttention(MultiHeadAttention {
            num_heads: 4,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: false,
            kv_num_heads: None,
        })
    };
    let q = || Arg::In(f32s(vec![sym("batch"), sym("seq"), k(32)]));
    let kv = || Arg::In(f32s(vec![sym("batch"), sym("seq"), k(32)]));
    let past = || Arg::In(f32s(vec![sym("batch"), k(4), sym("past"), k(8)]));
    let args = vec![
        q(),
        kv(),
        kv(),
        Arg::Omitted,
        Arg::Omitted,
        Arg::Omitted,
        past(),
        past(),
    ];
    let outs = infer(mha(), args, 3).expect("MHA");
    assert_eq!(outs[0], Some(f32s(vec![sym("batch"), sym("seq"), k(32)])));
    let present = f32s(vec![sym("batch"), k(4), sym("past+seq"), k(8)]);
    assert_eq!(outs[1], Some(present.clone()));
    assert_eq!(outs[2], Some(present));
    let outs = infer(mha(), vec![q(), kv(), kv()], 3).expect("MHA");
    assert_eq!(
        outs[1],
        Some(f32s(vec![sym("batch"), k(4), sym("seq"), k(8)]))
    );
    let bad_past = Arg::In(f32s(vec![sym("batch"), k(4), sym("past"), k(16)]));
    let args = vec![
        q(),
        kv(),
        kv(),
        Arg::Omitted,
        Arg::Omitted,
        Arg::Omitted,
        bad_past,
        past(),
    ];
    assert!(err_of(infer(mha(), args, 3)).contains("head size"));
    let odd = Arg::In(f32s(vec![sym("batch"), sym("seq"), k(30)]));
    assert!(err_of(infer(mha(), vec![odd, kv(), kv()], 3)).contains("multiple of num_heads"));
}

#[test]
fn norms_return_every_output() {
    let x = || Arg::In(f32s(vec![sym("b"), sym("s"), k(32)]));
    let gamma = || Arg::Const(Tensor::zeros(DType::F32, vec![32]));
    let outs = infer(
        Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization { epsilon: 1e-5 }),
        vec![x(), x(), gamma()],
        4,
    )
    .expect("SkipSimplifiedLayerNormalization");
    let stats = f32s(vec![sym("b"), sym("s"), k(1)]);
    assert_eq!(
        outs,
        vec![
            Some(f32s(vec![sym("b"), sym("s"), k(32)])),
            Some(stats.clone()),
            Some(stats.clone()),
            Some(f32s(vec![sym("b"), sym("s"), k(32)]))
        ]
    );
    let outs = infer(
        Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        }),
        vec![x(), gamma()],
        2,
    )
    .expect("SimplifiedLayerNormalization");
    assert_eq!(outs[1], Some(stats.clone()));
    let outs = infer(
        Op::LayerNormalization(LayerNormalization {
            axis: 1,
            epsilon: 1e-5,
        }),
        vec![x(), gamma(), gamma()],
        3,
    )
    .expect("LayerNormalization");
    assert_eq!(outs[2], Some(f32s(vec![sym("b"), k(1), k(1)])));
    let wrong = Arg::Const(Tensor::zeros(DType::F32, vec![16]));
    let e = infer(
        Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization { epsilon: 1e-5 }),
        vec![x(), x(), wrong],
        4,
    );
    assert!(err_of(e).contains("gamma"));
}

#[test]
fn shape_subgraph_ops() {
    let x = || Arg::In(f32s(vec![sym("b"), sym("s"), k(32)]));
    let shape = infer1(
        Op::Shape(Shape {
            start: 0,
            end: None,
        }),
        vec![x()],
    )
    .expect("Shape");
    assert_eq!(shape, Fact::new(DType::I64, Some(vec![k(3)])));
    assert_eq!(
        shape1(
            Op::Shape(Shape {
                start: -2,
                end: Some(100)
            }),
            vec![x()]
        ),
        vec![k(2)]
    );
    let r = |a: i64, b: i64, c: i64| {
        vec![
            Arg::Const(Tensor::scalar(a)),
            Arg::Const(Tensor::scalar(b)),
            Arg::Const(Tensor::scalar(c)),
        ]
    };
    assert_eq!(shape1(Op::Range(Range), r(0, 10, 3)), vec![k(4)]);
    assert_eq!(shape1(Op::Range(Range), r(10, 0, -4)), vec![k(3)]);
    assert_eq!(shape1(Op::Range(Range), r(5, 0, 1)), vec![k(0)]);
    let runtime = vec![
        Arg::Const(Tensor::scalar(0i64)),
        Arg::In(Fact::new(DType::I64, Some(vec![]))),
        Arg::Const(Tensor::scalar(1i64)),
    ];
    assert_eq!(shape1(Op::Range(Range), runtime), vec![Dim::unknown()]);
    let nz = infer1(
        Op::NonZero(NonZero),
        vec![Arg::In(Fact::new(DType::Bool, Some(vec![sym("n")])))],
    )
    .expect("NonZero");
    assert_eq!(nz, Fact::new(DType::I64, Some(vec![k(1), Dim::unknown()])));
    let cos = |a| {
        Op::ConstantOfShape(ConstantOfShape {
            value: Tensor::scalar(0i64),
        })
        .infer(&[Some(&a)], &[])
    };
    assert_eq!(
        cos(Fact::new(DType::I64, Some(vec![k(2)]))).expect("ConstantOfShape")[0],
        Fact::new(DType::I64, Some(vec![Dim::unknown(); 2]))
    );
    let c = infer1(
        Op::ConstantOfShape(ConstantOfShape {
            value: Tensor::scalar(1f32),
        }),
        vec![Arg::Const(i64s(vec![2, 0, 3]))],
    );
    assert_eq!(c.expect("ConstantOfShape"), f32s(vec![k(2), k(0), k(3)]));
    let e = Arg::In(f32s(vec![k(1), k(1), sym("s"), k(5)]));
    assert_eq!(
        shape1(
            Op::Expand(Expand),
            vec![e, Arg::Const(i64s(vec![3, 1, 1, 1]))]
        ),
        vec![k(3), k(1), sym("s"), k(5)]
    );
    let e = Arg::In(f32s(vec![k(1), sym("s"), k(5)]));
    let rt = Arg::In(Fact::new(DType::I64, Some(vec![k(4)])));
    assert_eq!(
        shape1(Op::Expand(Expand), vec![e, rt]),
        vec![Dim::unknown(), Dim::unknown(), Dim::unknown(), k(5)]
    );
    let t = Arg::In(f32s(vec![sym("b"), k(1), k(3)]));
    assert_eq!(
        shape1(Op::Tile(Tile), vec![t, Arg::Const(i64s(vec![1, 4, 2]))]),
        vec![sym("b"), k(4), k(6)]
    );
    let red = Op::Reduce(Reduce {
        kind: ReduceKind::Sum,
        axes: None,
        keepdims: false,
        noop_with_empty_axes: false,
    });
    assert_eq!(
        shape1(red, vec![x(), Arg::Const(i64s(vec![-1, 0]))]),
        vec![sym("s")]
    );
    let red = Op::Reduce(Reduce {
        kind: ReduceKind::Mean,
        axes: Some(vec![-1]),
        keepdims: true,
        noop_with_empty_axes: false,
    });
    assert_eq!(shape1(red, vec![x()]), vec![sym("b"), sym("s"), k(1)]);
    let fl = Arg::In(f32s(vec![sym("b"), k(3), k(4)]));
    assert_eq!(
        shape1(Op::Flatten(Flatten { axis: 1 }), vec![fl]),
        vec![sym("b"), k(12)]
    );
    let data = Arg::In(f32s(vec![sym("n"), k(3), k(4)]));
    let idx = Arg::In(Fact::new(DType::I64, Some(vec![Dim::unknown(), k(1)])));
    assert_eq!(
        shape1(Op::GatherND(GatherND { batch_dims: 0 }), vec![data, idx]),
        vec![Dim::unknown(), k(3), k(4)]
    );
}
