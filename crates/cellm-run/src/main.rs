//! `cellm-run`: run ONNX graphs and SmolVLM models from the command line.

mod backend_arg;
mod cmd_bench;
mod cmd_chat;
mod cmd_compile;
mod cmd_convert;
mod cmd_devices;
mod cmd_exec;
mod cmd_graph;
mod cmd_inspect;
mod cmd_preprocess;
mod cmd_stats;
mod cmd_vlm;
mod embedded;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cellm-run",
    version,
    about = "Run SmolVLM-class models and ONNX graphs on GPU or CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one ONNX graph on .npy inputs and write .npy outputs.
    Exec(cmd_exec::ExecArgs),
    /// Print a graph's inputs, outputs (dtypes, symbolic shapes) and op histogram.
    Inspect(cmd_inspect::InspectArgs),
    /// Write a graph as Graphviz DOT.
    Graph(cmd_graph::GraphArgs),
    /// Optimise a model into a plan in the plans cache (exec and vlm load it).
    Compile(cmd_compile::CompileArgs),
    /// Per-graph statistics: nodes and kernels before/after passes, peak bytes.
    Stats(cmd_stats::StatsArgs),
    /// Answer a prompt about images with a SmolVLM model folder (or the bundled demo).
    Vlm(cmd_vlm::VlmArgs),
    /// Run only the Idefics3 processor and write its tensors as .npy.
    Preprocess(cmd_preprocess::PreprocessArgs),
    /// List the GPU adapters and their capabilities.
    Devices(cmd_devices::DevicesArgs),
    /// Convert GGUF or HF safetensors weights to a .cellm file.
    Convert(cmd_convert::ConvertArgs),
    /// Generate text with a .cellm llama model (plain completion or --chat).
    Chat(cmd_chat::ChatArgs),
    /// Load and run times on synthetic inputs (decoder, vision encoder, .cellm llm).
    Bench(cmd_bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Exec(a) => cmd_exec::run(a),
        Command::Inspect(a) => cmd_inspect::run(a),
        Command::Graph(a) => cmd_graph::run(a),
        Command::Compile(a) => cmd_compile::run(a),
        Command::Stats(a) => cmd_stats::run(a),
        Command::Vlm(a) => cmd_vlm::run(a),
        Command::Preprocess(a) => cmd_preprocess::run(a),
        Command::Devices(a) => cmd_devices::run(a),
        Command::Convert(a) => cmd_convert::run(a),
        Command::Chat(a) => cmd_chat::run(a),
        Command::Bench(a) => cmd_bench::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
