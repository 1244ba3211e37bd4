//! `cargo run --release -p cellm-format --example convert -- INPUT OUT.cellm [keep|f16|f32]`
//! (the same conversion as `cellm-run convert`, without the CLI's dependencies).

use anyhow::{Context, Result};
use cellm_format::{convert_file, ConvertDType};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let input = args
        .get(1)
        .context("usage: convert INPUT OUT.cellm [keep|f16|f32]")?;
    let output = args
        .get(2)
        .context("usage: convert INPUT OUT.cellm [keep|f16|f32]")?;
    let dtype = ConvertDType::parse(args.get(3).map(String::as_str).unwrap_or("keep"))?;
    convert_file(input.as_ref(), output.as_ref(), dtype, &mut |_, _| {})
}
