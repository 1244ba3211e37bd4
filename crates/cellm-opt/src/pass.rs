//! The pass framework: rules (guard + patch) and the fixpoint pipeline.

use crate::passes;
use anyhow::{anyhow, Result};
use cellm_ir::Graph;
use petgraph::stable_graph::NodeIndex;

/// One rewrite rule: `guard` looks at a node and, when the pattern rooted
/// there matches, returns what `patch` needs to rewrite it.
pub trait Rule {
    type Match;
    fn name(&self) -> &'static str;
    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Self::Match>;
    fn patch(&self, g: &mut Graph, m: Self::Match) -> Result<()>;
    /// Visit consumers before producers (DCE removes chains in one sweep).
    fn reverse(&self) -> bool {
        false
    }
    /// Run only in rounds where every pass before it changed nothing (see
    /// [`Pass::late`]).
    fn late(&self) -> bool {
        false
    }
}

/// Anything the pipeline can run: one sweep over the graph, returning the
/// number of rewrites made.
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, g: &mut Graph) -> Result<usize>;
    /// Runs only in rounds where the passes before it changed nothing: a
    /// catch-all fusion must not take patterns the others would still
    /// find once a later round has folded or fused what they need.
    fn late(&self) -> bool {
        false
    }
}

/// Adapts a [`Rule`] into a [`Pass`]: tries the rule at every node once.
pub struct RulePass<R: Rule>(pub R);

impl<R: Rule> Pass for RulePass<R> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn late(&self) -> bool {
        self.0.late()
    }
    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut order = g.topo_order()?;
        if self.0.reverse() {
            order.reverse();
        }
        let mut n = 0;
        for ix in order {
            // Earlier patches may have removed this node.
            if !g.nodes.contains_node(ix) {
                continue;
            }
            if let Some(m) = self.0.guard(g, ix) {
                let name = g.nodes[ix].name.clone();
                self.0
                    .patch(g, m)
                    .map_err(|e| anyhow!("pass {} at node '{name}': {e:#}", self.0.name()))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Counts of rewrites per pass, summed over all rounds.
#[derive(Clone, Debug, Default)]
pub struct PipelineReport {
    pub rounds: usize,
    pub rewrites: Vec<(&'static str, usize)>,
}

impl PipelineReport {
    fn add(&mut self, name: &'static str, n: usize) {
        match self.rewrites.iter_mut().find(|(k, _)| *k == name) {
            Some(e) => e.1 += n,
            None => self.rewrites.push((name, n)),
        }
    }
}

/// Passes run in order, round after round, until a round changes nothing.
pub struct Pipeline {
    pub passes: Vec<Box<dyn Pass>>,
    pub max_rounds: usize,
}

impl Pipeline {
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Pipeline {
        Pipeline {
            passes,
            max_rounds: 32,
        }
    }

    /// Cleanup and folding first (fusion guards look for constants), then the
    /// fusions from the inside out: norms, rotary, attention, MHA layouts,
    /// activations and epilogues, then the fusions that only merge launches.
    pub fn default_passes() -> Pipeline {
        Pipeline::new(vec![
            Box::new(RulePass(passes::dce::Dce)),
            Box::new(passes::cse::Cse),
            Box::new(RulePass(passes::shape_fold::ShapeFold)),
            Box::new(RulePass(passes::where_fold::WhereFold)),
            Box::new(RulePass(passes::reshape_canon::ReshapeCanon)),
            Box::new(RulePass(passes::constant_fold::ConstantFold::default())),
            Box::new(RulePass(passes::layer_norm::LayerNormFusion)),
            Box::new(RulePass(passes::rms_norm::RmsNormFusion)),
            Box::new(RulePass(passes::skip_rms_norm::SkipRmsNormFusion)),
            Box::new(RulePass(passes::rotary::RotaryFusion::default())),
            Box::new(RulePass(passes::attention::AttentionFusion)),
            Box::new(RulePass(passes::mha_kv_layout::MhaKvLayout)),
            // Activations, then epilogues last: norms claim their residual
            // adds (SkipSimplifiedLayerNormalization) before MatMuls do.
            Box::new(RulePass(passes::gelu::GeluFusion)),
            Box::new(RulePass(passes::silu_mul::SiluMulFusion)),
            Box::new(RulePass(passes::mat_mul_epilogue::MatMulEpilogueFusion)),
            // Launch-count fusions last, so they take only what the fusions
            // above leave: gate/up products under a SiluMul, then sibling
            // projections of one activation (q/k/v), then the rotary pair
            // those projections feed, then that pair into the projections.
            Box::new(RulePass(passes::mat_mul_silu_mul::MatMulSiluMulFusion)),
            Box::new(RulePass(passes::mat_mul_multi::MatMulMultiFusion)),
            Box::new(RulePass(passes::rotary_pair::RotaryPairFusion)),
            // Then the pair into the projections making its q and k.
            Box::new(RulePass(
                passes::mat_mul_multi_rotary::MatMulMultiRotaryFusion,
            )),
            // Catch-all: leftover float elementwise chains into one kernel,
            // only once every pattern fusion above has settled (`late`).
            Box::new(RulePass(passes::elementwise_chain::ElementwiseChain)),
        ])
    }

    /// The same pipeline without the passes named in `skip` (as [`Pass::name`]).
    pub fn without(mut self, skip: &[&str]) -> Pipeline {
        self.passes.retain(|p| !skip.contains(&p.name()));
        self
    }

    pub fn run(&self, g: &mut Graph) -> Result<PipelineReport> {
        let mut report = PipelineReport::default();
        g.infer_facts()?;
        for _ in 0..self.max_rounds {
            report.rounds += 1;
            let mut changed = 0;
            for p in &self.passes {
                if p.late() && changed > 0 {
                    continue;
                }
                let n = p.run(g)?;
                if n > 0 {
                    // Later guards read shapes, so keep facts current.
                    g.infer_facts()
                        .map_err(|e| anyhow!("after pass {}: {e:#}", p.name()))?;
                }
                report.add(p.name(), n);
                changed += n;
            }
            if changed == 0 {
                break;
            }
        }
        passes::dce::prune_initializers(g);
        g.validate()?;
        Ok(report)
    }
}
