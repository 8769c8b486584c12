//! `dnnc fmt` (canonical layout) and `dnnc tokens` (the token stream, for editors).
//!
//! Both read the file as bytes; a file that is not UTF-8, or (for `fmt`) does not parse,
//! is refused with the same diagnostics `dnnc check` prints, and the command fails.

use dnnc::diag;
use dnnc::sema;
use dnnc::source::SourceMap;
use dnnc::syntax;
use std::path::Path;
use std::process::ExitCode;

/// Reads a file as UTF-8 text, printing the error otherwise.
fn read_text(file: &Path) -> Option<String> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            // `check_bytes` builds the located E0002 diagnostic for invalid UTF-8.
            let checked = sema::check_bytes(&file.display().to_string(), e.as_bytes());
            diag::render(&checked.diags, &checked.sources);
            None
        }
    }
}

/// Prints the formatted file, checks that it is formatted (`check`), or rewrites it (`write`).
pub fn fmt(file: &Path, check: bool, write: bool) -> ExitCode {
    let Some(text) = read_text(file) else { return ExitCode::FAILURE };
    let mut sources = SourceMap::new();
    let id = sources.add(file.display().to_string(), text.clone());
    let formatted = match syntax::format_source(id, &text) {
        Ok(f) => f,
        Err(diags) => {
            diag::render(&diags, &sources);
            eprintln!("error: `{}` has syntax errors; it was not formatted", file.display());
            return ExitCode::FAILURE;
        }
    };
    if check {
        if formatted == text {
            return ExitCode::SUCCESS;
        }
        let line = text
            .lines()
            .zip(formatted.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| text.lines().count().min(formatted.lines().count()) + 1, |i| i + 1);
        eprintln!("{}:{line}: not formatted; run `dnnc fmt --write {}`", file.display(), file.display());
        return ExitCode::FAILURE;
    }
    if write {
        if formatted != text
            && let Err(e) = dnnc::runtime::fsutil::write_atomic(file, formatted.as_bytes())
        {
            eprintln!("error: cannot write {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    print!("{formatted}");
    ExitCode::SUCCESS
}

/// Prints one line per token, `line:col kind "text"`, or a JSON array with `json`.
pub fn tokens(file: &Path, json: bool) -> ExitCode {
    let Some(text) = read_text(file) else { return ExitCode::FAILURE };
    let infos = syntax::token_infos(&text);
    if json {
        match serde_json::to_string_pretty(&infos) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot encode tokens as JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        for t in &infos {
            println!("{}:{} {} {:?}", t.line, t.col, t.kind, t.text);
        }
    }
    ExitCode::SUCCESS
}
