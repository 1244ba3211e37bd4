//! `cellm-run convert`: GGUF or HF safetensors → `.cellm`.

use anyhow::Result;
use cellm_format::convert::{convert_file, ConvertDType};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct ConvertArgs {
    /// A GGUF file (llama), a .safetensors file with config.json beside it, or a HF model folder.
    pub input: PathBuf,
    /// The .cellm file to write (atomically: temp file + rename).
    #[arg(short, long)]
    pub output: PathBuf,
    /// keep: store tensors as in the source (quantized blocks as they are); f16; f32.
    #[arg(long, default_value = "keep")]
    pub dtype: String,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    let dtype = ConvertDType::parse(&a.dtype)?;
    let t = Instant::now();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} tensors {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("converting");
    let result = convert_file(&a.input, &a.output, dtype, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    result?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({:.1} MB) in {:.1}s",
        a.output.display(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
