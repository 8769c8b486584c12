//! The `dnnc` command line: argument parsing only; each command lives in `src/cli/`.

mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dnnc", version, about = "A language and compiler for neural networks")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// The syntax tree.
    Ast,
    /// The typed IR of every model and training block.
    Typed,
    /// The forward-plus-backward graph of every training block, simplified.
    Grad,
    /// The fused schedule of every training step and its buffer plan.
    Fused,
    /// The Cranelift IR of every compiled training step.
    Clif,
}

/// Options shared by the commands that run a program.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Folder holding the datasets (`mnist/`, `imdb/`, ...); else $DNNC_DATA, else the cache.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed for initialization, shuffling and dropout (overrides the file).
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    /// Learning rate (overrides the optimizer's `lr`).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Use only the first N samples of every dataset.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the training history here (.csv or .json).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Save the trained parameters here (safetensors), after every epoch.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Start from these parameters (safetensors).
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// What runs the graphs: compiled code (default) or the reference interpreter.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Threads the compiled step splits its matrix products, convolutions and updates
    /// between (default: one per core; 1 runs everything on the calling thread).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Jit,
    Interp,
}

#[derive(Subcommand)]
enum Command {
    /// Parses and checks a program; prints every error.
    Check { file: PathBuf },
    /// Prints one stage of the compiler's output in its stable text form.
    Ir {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "typed")]
        stage: Stage,
    },
    /// Prints the long explanation of an error code, such as E0201.
    Explain { code: String },
    /// Runs the file's `train` and `evaluate` blocks.
    Run {
        file: PathBuf,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Evaluates saved parameters with the file's `evaluate` blocks.
    Eval {
        file: PathBuf,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Prints the model's predictions for the first samples of the `evaluate` data.
    Predict {
        file: PathBuf,
        /// How many samples.
        #[arg(long, default_value_t = 10)]
        count: usize,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Prints the file in its canonical layout (or checks or rewrites it).
    Fmt {
        file: PathBuf,
        /// Fails, without printing the file, if it is not formatted.
        #[arg(long, conflicts_with = "write")]
        check: bool,
        /// Rewrites the file in place.
        #[arg(long)]
        write: bool,
    },
    /// Prints the file's tokens, one per line: `line:col kind "text"`.
    Tokens {
        file: PathBuf,
        /// Prints a JSON array of {line, col, start, end, kind, text} instead.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Check { file } => cli::check(&file),
        Command::Ir { file, stage } => cli::ir(&file, stage),
        Command::Explain { code } => cli::explain(&code),
        Command::Run { file, args } => cli::run::run(&file, &args),
        Command::Eval { file, args } => cli::run::eval(&file, &args),
        Command::Predict { file, count, args } => cli::run::predict(&file, count, &args),
        Command::Fmt { file, check, write } => cli::fmt(&file, check, write),
        Command::Tokens { file, json } => cli::tokens(&file, json),
    }
}
