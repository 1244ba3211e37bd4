//! One file per pass.

pub mod attention;
pub mod constant_fold;
pub mod cse;
pub mod dce;
pub mod layer_norm;
pub mod mha_kv_layout;
pub mod reshape_canon;
pub mod rms_norm;
pub mod rotary;
pub mod shape_fold;
pub mod skip_rms_norm;
pub mod where_fold;
