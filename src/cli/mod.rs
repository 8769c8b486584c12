//! The commands of the `dnnc` binary.

mod fmt;
pub mod run;
pub use fmt::{fmt, tokens};

use crate::Stage;
use dnnc::diag;
use dnnc::sema::{self, Checked};
use std::path::Path;
use std::process::ExitCode;

/// Reads and checks a file, printing diagnostics; `None` when it has errors.
pub fn load(file: &Path) -> Option<(Checked, sema::Program)> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return None;
        }
    };
    let mut checked = sema::check_bytes(&file.display().to_string(), &bytes);
    diag::render(&checked.diags, &checked.sources);
    let errors = checked.diags.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!(
            "error: could not compile `{}` due to {errors} previous error{}",
            file.display(),
            if errors == 1 { "" } else { "s" }
        );
    }
    let program = checked.program.take()?;
    Some((checked, program))
}

pub fn check(file: &Path) -> ExitCode {
    match load(file) {
        Some((_, p)) => {
            println!(
                "{}: ok ({} model{}, {} block{})",
                file.display(),
                p.models.len(),
                plural(p.models.len()),
                p.trains.len(),
                plural(p.trains.len())
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

pub fn ir(file: &Path, stage: Stage) -> ExitCode {
    let Some((_, program)) = load(file) else { return ExitCode::FAILURE };
    match stage {
        Stage::Ast => print!("{}", dnnc::syntax::print_ast(&program.ast)),
        Stage::Typed => print!("{}", dnnc::sema::print_program(&program)),
        Stage::Grad | Stage::Fused | Stage::Clif => {
            for t in program.trains.iter().filter(|t| t.train_graph.is_some()) {
                let text = match stage {
                    Stage::Grad => dnnc::runtime::train::step_graph(t).map(|g| dnnc::ir::print_graph(&g)),
                    Stage::Fused => dnnc::runtime::train::print_fused(t),
                    _ => dnnc::runtime::train::print_clif(t),
                };
                match text {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    ExitCode::SUCCESS
}

pub fn explain(code: &str) -> ExitCode {
    match diag::explain(code) {
        Some(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: `{code}` is not an error code; codes look like E0201");
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
