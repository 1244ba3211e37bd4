//! cellm's runtime: loads model folders, runs the SmolVLM pipeline's graphs and
//! the token-by-token generation loop on a backend.

pub mod backend;
pub mod decoder;
pub mod generate;
pub mod model_dir;
pub mod plan;
pub mod sampling;
pub mod smolvlm;

pub use backend::{Backend, EmbedRows, ExecOptions, Executable};
pub use generate::{generate, GenerateConfig, Generation, TokenEvent};
pub use sampling::{Sampler, SamplingConfig};
