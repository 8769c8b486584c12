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
        Command::Fmt { file, check, write } => cli::fmt(&file, check, write),
        Command::Tokens { file, json } => cli::tokens(&file, json),
    }
}
