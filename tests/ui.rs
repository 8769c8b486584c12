//! UI tests for diagnostics: every `tests/ui/*.dnn` is an erroneous program whose expected
//! errors are written next to the offending lines as `// ERROR E0202`.
//!
//! For each file the test checks that the reported (code, line) pairs are exactly the
//! annotated ones, that every diagnostic follows the house style (lowercase message
//! without a final period, a labelled primary span in the checked file), and snapshots the
//! rendered plain text. Two more tests run the built `dnnc` binary: a shape error must print
//! its code, `file:line:col`, the underlined span and both shapes and exit non-zero, and
//! `dnnc check examples/mnist.dnn` must succeed.

use dnnc::diag::{Diag, render_plain};
use dnnc::sema::check_bytes;
use std::path::{Path, PathBuf};
use std::process::Command;
#[path = "support/files.rs"]
mod files;
use files::dnn_files;

fn ui_files() -> Vec<PathBuf> {
    dnn_files("tests/ui")
}

/// The `(code, line)` pairs annotated in a file, sorted.
fn annotations(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(at) = line.find("// ERROR ") {
            for code in line[at + "// ERROR ".len()..].split_whitespace() {
                if code.len() == 5 && code.starts_with(['E', 'W']) {
                    out.push((code.to_string(), i + 1));
                }
            }
        }
    }
    out.sort();
    out
}

/// Checks the house style of one diagnostic; returns what is wrong with it.
fn style_problems(d: &Diag) -> Vec<String> {
    let mut problems = Vec::new();
    let first = d.message.chars().next().unwrap_or(' ');
    if first.is_uppercase() {
        problems.push(format!("message starts with a capital: {:?}", d.message));
    }
    if d.message.ends_with('.') {
        problems.push(format!("message ends with a period: {:?}", d.message));
    }
    if d.primary.message.is_empty() {
        problems.push("the primary label says nothing".into());
    }
    // Only "unexpected end of the item" may point between two characters.
    if d.primary.span.start == d.primary.span.end && !d.message.contains("end of the item") {
        problems.push(format!("empty primary span for {:?}", d.message));
    }
    if let Some(h) = &d.help
        && h.starts_with("help")
    {
        problems.push("help text repeats `help`".into());
    }
    problems
}

#[test]
fn every_ui_file_reports_exactly_its_annotated_errors() {
    let files = ui_files();
    assert!(files.len() >= 35, "expected at least 35 ui tests, found {}", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.to_string_lossy().into_owned();
        let bytes = std::fs::read(path).expect("readable ui file");
        let expected = annotations(&String::from_utf8_lossy(&bytes));
        assert!(!expected.is_empty(), "{name} has no `// ERROR` annotation");
        let checked = check_bytes(&name, &bytes);
        assert!(checked.program.is_none(), "{name} compiled although it has errors");
        let mut got: Vec<(String, usize)> = Vec::new();
        for d in &checked.diags {
            let file = checked.sources.name(d.primary.span.file);
            let (line, _) = checked.sources.line_col(d.primary.span);
            if file == name {
                got.push((d.code.as_str().to_string(), line));
            } else {
                failures.push(format!("{name}: {} has its primary span in {file}:{line}", d.code.as_str()));
            }
            for p in style_problems(d) {
                failures.push(format!("{name}: {p}"));
            }
        }
        got.sort();
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 file name");
        insta::assert_snapshot!(stem, render_plain(&checked.diags, &checked.sources));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn annotations_are_read_from_comments() {
    let text = "fn f() = x // ERROR E0101\nok\n  y // ERROR E0001 E0004\n";
    let want = vec![("E0001".to_string(), 3), ("E0004".to_string(), 3), ("E0101".to_string(), 1)];
    assert_eq!(annotations(text), want);
}

fn dnnc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dnnc")).args(args).output().expect("the dnnc binary runs")
}

#[test]
fn the_binary_reports_a_shape_error_with_both_shapes_and_fails() {
    let file = Path::new("tests/ui/matmul_before_flatten.dnn");
    let out = dnnc(&["check", file.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "dnnc check succeeded on a shape error");
    assert!(stderr.contains("error[E0202]"), "no code in:\n{stderr}");
    assert!(stderr.contains("tests/ui/matmul_before_flatten.dnn:4:32"), "no file:line:col in:\n{stderr}");
    assert!(stderr.contains("^^^^^"), "no underline in:\n{stderr}");
    assert!(
        stderr.contains("f32[B, 28, 28]") && stderr.contains("f32[784, 10]"),
        "shapes missing:\n{stderr}"
    );
    assert!(stderr.contains("help:"), "no help in:\n{stderr}");
}

#[test]
fn the_binary_checks_the_mnist_example() {
    let out = dnnc(&["check", "examples/mnist.dnn"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 model, 2 blocks)"));
}
