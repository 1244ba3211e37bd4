//! The `.cellm` weights format and what reads and writes it:
//! - [`format`]: container reader (mmap, zero-copy tensors) and atomic writer;
//! - [`quant`]: f32/f16 and GGML block-quantized dtypes (q4_0, q4_1, q8_0);
//! - [`gguf`] and [`safetensors`]: converters, driven by [`convert`];
//! - [`config`]: llama hyper-parameters (idefics3 routes to its text model);
//! - [`llama_graph`]: the native llama decoder graph with the ONNX builder's I/O;
//! - [`chat`]: chat template rendering.

pub mod chat;
pub mod config;
pub mod convert;
pub mod format;
pub mod gguf;
pub mod llama_graph;
pub mod quant;
pub mod safetensors;
pub mod tokenizer;

pub use config::LlamaConfig;
pub use convert::{convert_file, ConvertDType};
pub use format::{
    write_cellm, CellmFile, GenerationDefaults, Header, PendingTensor, TensorEntry, WeightTensor,
};
pub use llama_graph::{build_llama_decoder, Embedder, LlamaDecoder, LlamaGraphOptions};
pub use quant::WeightDType;
pub use tokenizer::tokenizer_json;
