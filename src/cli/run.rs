//! `dnnc run`, `dnnc eval` and `dnnc predict`: running a program's blocks.

use crate::RunArgs;
use dnnc::diag::{self, Code, Diag};
use dnnc::runtime::train::{self, RunConfig, TrainError};
use dnnc::source::SourceMap;
use dnnc::syntax::ast::TrainKind;
use std::path::Path;
use std::process::ExitCode;

fn config(a: &RunArgs) -> RunConfig {
    RunConfig {
        data_dir: a.data.clone(),
        seed: a.seed,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        limit: a.limit,
        history: a.history.clone(),
        save: a.save.clone(),
        load: a.load.clone(),
        interactive: None,
        backend: a.backend.map(|b| match b {
            crate::Backend::Jit => train::BackendKind::Jit,
            crate::Backend::Interp => train::BackendKind::Interp,
        }),
        threads: a.threads,
    }
}

/// Prints a runtime error; a divergence is shown at the op that produced it.
fn report(e: &TrainError, sources: &SourceMap) -> ExitCode {
    match e {
        TrainError::NonFinite { span, op, .. } => {
            let d = Diag::error(
                Code::E0406,
                e.to_string(),
                *span,
                format!("`{op}` produced NaN or infinity here"),
            )
            .with_help("lower the learning rate, clip gradients (`clipnorm`), or check the data for NaNs");
            diag::render(&[d], sources);
        }
        other => eprintln!("error: {other}"),
    }
    ExitCode::FAILURE
}

pub fn run(file: &Path, args: &RunArgs) -> ExitCode {
    let Some((checked, program)) = super::load(file) else { return ExitCode::FAILURE };
    let mut stdout = std::io::stdout();
    match train::run_program(&program, &config(args), &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => report(&e, &checked.sources),
    }
}

pub fn eval(file: &Path, args: &RunArgs) -> ExitCode {
    let Some((checked, program)) = super::load(file) else { return ExitCode::FAILURE };
    let cfg = config(args);
    let mut stdout = std::io::stdout();
    let mut any = false;
    for spec in program.trains.iter().filter(|t| t.kind == TrainKind::Evaluate) {
        any = true;
        if let Err(e) = train::evaluate_block(spec, None, &cfg, &mut stdout) {
            return report(&e, &checked.sources);
        }
    }
    if !any {
        eprintln!("error: `{}` has no `evaluate` block", file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

pub fn predict(file: &Path, count: usize, args: &RunArgs) -> ExitCode {
    let Some((checked, program)) = super::load(file) else { return ExitCode::FAILURE };
    let Some(spec) = program.trains.iter().find(|t| t.kind == TrainKind::Evaluate) else {
        eprintln!("error: `{}` has no `evaluate` block to take samples from", file.display());
        return ExitCode::FAILURE;
    };
    match train::predict(spec, None, &config(args), count) {
        Ok(rows) => {
            for (i, row) in rows.outer_iter().enumerate() {
                let values: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
                let best = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b })
                    .0;
                if row.len() > 1 {
                    println!("{i}: class {best} [{}]", values.join(", "));
                } else {
                    println!("{i}: {}", values.join(", "));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => report(&e, &checked.sources),
    }
}
