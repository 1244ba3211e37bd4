//! `cellm-run preprocess`: the Idefics3 processor alone, written as .npy.

use crate::cmd_vlm::build_messages;
use anyhow::{Context, Result};
use cellm_ir::npy;
use cellm_vlm::Idefics3Processor;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct PreprocessArgs {
    #[arg(long)]
    pub model_dir: PathBuf,
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    #[arg(long)]
    pub prompt: Option<String>,
    #[arg(long, conflicts_with = "prompt")]
    pub messages: Option<PathBuf>,
    #[arg(long, overrides_with = "no_split_image")]
    pub split_image: bool,
    #[arg(long, overrides_with = "split_image")]
    pub no_split_image: bool,
    /// Folder for input_ids.npy, attention_mask.npy, pixel_values.npy, pixel_attention_mask.npy.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: PreprocessArgs) -> Result<()> {
    let processor = Idefics3Processor::from_model_dir(&a.model_dir)?;
    let messages = build_messages(a.prompt.as_deref(), a.messages.as_deref(), a.images.len())?;
    let images = a
        .images
        .iter()
        .map(|p| {
            cellm_vlm::image_load::load_rgb(p).with_context(|| format!("--image {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let split = if a.split_image {
        Some(true)
    } else if a.no_split_image {
        Some(false)
    } else {
        None
    };
    let out = processor.process(&messages, &images, split)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    npy::write(&a.out.join("input_ids.npy"), &out.input_ids_tensor())?;
    npy::write(
        &a.out.join("attention_mask.npy"),
        &out.attention_mask_tensor(),
    )?;
    if let Some(img) = &out.images {
        npy::write(&a.out.join("pixel_values.npy"), &img.pixel_values)?;
        npy::write(
            &a.out.join("pixel_attention_mask.npy"),
            &img.pixel_attention_mask,
        )?;
        println!("{} frames, rows/cols {:?}", img.num_frames(), img.rows_cols);
    }
    println!(
        "{} tokens written to {}",
        out.input_ids.len(),
        a.out.display()
    );
    Ok(())
}
