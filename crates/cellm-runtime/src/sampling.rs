//! Next-token selection: greedy, temperature, top-k, top-p, seeded.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug)]
pub struct SamplingConfig {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 means no top-k cut.
    pub top_k: usize,
    /// 1.0 means no nucleus cut.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

pub struct Sampler {
    cfg: SamplingConfig,
    rng: StdRng,
}

/// One chosen token with its log-probability under the model's (untempered)
/// distribution.
#[derive(Clone, Copy, Debug)]
pub struct Choice {
    pub id: u32,
    pub logprob: f32,
}

impl Sampler {
    pub fn new(cfg: SamplingConfig) -> anyhow::Result<Sampler> {
        if !(cfg.temperature >= 0.0 && cfg.temperature.is_finite()) {
            anyhow::bail!(
                "--temperature must be a finite number >= 0, got {}",
                cfg.temperature
            );
        }
        if !(cfg.top_p > 0.0 && cfg.top_p <= 1.0) {
            anyhow::bail!("--top-p must be in (0, 1], got {}", cfg.top_p);
        }
        let rng = StdRng::seed_from_u64(cfg.seed);
        Ok(Sampler { cfg, rng })
    }

    /// Picks a token from `logits`; ids in `banned` are never chosen (used to
    /// hold back end tokens before --min-new-tokens).
    pub fn pick(&mut self, logits: &[f32], banned: &[u32]) -> Choice {
        let mut l: Vec<f32> = logits.to_vec();
        for &b in banned {
            if let Some(v) = l.get_mut(b as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        let id = if self.cfg.temperature == 0.0 {
            argmax(&l)
        } else {
            self.sample(&l)
        };
        Choice {
            id: id as u32,
            logprob: log_softmax_at(logits, id),
        }
    }

    fn sample(&mut self, logits: &[f32]) -> usize {
        let t = self.cfg.temperature;
        let mut idx: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect();
        if idx.is_empty() {
            return argmax(logits);
        }
        // Sort by logit, best first; ties keep id order so runs are reproducible.
        idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if self.cfg.top_k > 0 {
            idx.truncate(self.cfg.top_k);
        }
        let max = logits[idx[0]];
        let mut probs: Vec<f64> = idx
            .iter()
            .map(|&i| (((logits[i] - max) / t) as f64).exp())
            .collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if self.cfg.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (n, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= self.cfg.top_p as f64 {
                    keep = n + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
            let s: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= s);
        }
        let r: f64 = self.rng.random();
        let mut acc = 0.0;
        for (n, p) in probs.iter().enumerate() {
            acc += p;
            if r < acc {
                return idx[n];
            }
        }
        idx[probs.len() - 1]
    }
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// log softmax(v)[i], computed stably.
pub fn log_softmax_at(v: &[f32], i: usize) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = v.iter().map(|&x| ((x - max) as f64).exp()).sum();
    (v[i] - max) - sum.ln() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_logits(n: usize, seed: u64) -> Vec<f32> {
        let mut r = StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(-5.0..5.0)).collect()
    }

    #[test]
    fn greedy_is_argmax_and_respects_bans() {
        let seed = rand::random();
        let l = random_logits(100, seed);
        let mut s = Sampler::new(SamplingConfig::default()).unwrap();
        let best = argmax(&l);
        assert_eq!(s.pick(&l, &[]).id as usize, best, "seed {seed}");
        assert_ne!(s.pick(&l, &[best as u32]).id as usize, best, "seed {seed}");
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_holds() {
        let l = random_logits(50, rand::random());
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: 5,
            top_p: 1.0,
            seed: rand::random(),
        };
        let mut a = Sampler::new(cfg.clone()).unwrap();
        let mut b = Sampler::new(cfg).unwrap();
        let mut order: Vec<usize> = (0..l.len()).collect();
        order.sort_by(|&x, &y| l[y].total_cmp(&l[x]));
        let top5 = &order[..5];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let x = a.pick(&l, &[]).id;
            assert_eq!(x, b.pick(&l, &[]).id);
            assert!(top5.contains(&(x as usize)));
            seen.insert(x);
        }
        assert!(
            seen.len() > 1,
            "temperature 1 over 5 candidates should vary"
        );
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // One dominant token (p ≈ 0.99): top_p 0.5 must always pick it.
        let mut l = vec![0.0f32; 10];
        l[7] = 10.0;
        let mut s = Sampler::new(SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            seed: rand::random(),
        })
        .unwrap();
        for _ in 0..50 {
            assert_eq!(s.pick(&l, &[]).id, 7);
        }
    }

    #[test]
    fn logprob_matches_definition() {
        let l = random_logits(20, rand::random());
        let z: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        for i in 0..l.len() {
            let want = (l[i] as f64) - z.ln();
            assert!((log_softmax_at(&l, i) as f64 - want).abs() < 1e-5);
        }
    }
}
