//! One file per pass.

pub mod attention;
pub mod causal_mask;
pub mod constant_fold;
pub mod cse;
pub mod dce;
pub mod elementwise_chain;
pub mod f16_kv_cache;
pub mod f16_weights;
pub mod gelu;
pub mod kv_cache;
pub mod last_logits;
pub mod layer_norm;
pub mod mat_mul_epilogue;
pub mod mat_mul_multi;
pub mod mat_mul_multi_rotary;
pub mod mat_mul_silu_mul;
pub mod mha_kv_layout;
pub mod multi_head_attention_mat_mul;
pub mod reshape_canon;
pub mod rms_norm;
pub mod rotary;
pub mod rotary_pair;
pub mod shape_fold;
pub mod silu_mul;
pub mod skip_rms_norm;
pub mod where_fold;
