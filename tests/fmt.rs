//! `dnnc fmt` over every `.dnn` file in the repository that parses: formatting is
//! idempotent, keeps the AST (printed without spans) and every comment in order; the
//! examples, fixtures and standard library are already in canonical form; files with
//! syntax errors are refused with their diagnostics.

use dnnc::source::FileId;
use dnnc::syntax::lexer::{Tok, tokenize};
use dnnc::syntax::{format_source, format_tokens, parse, print_ast};
use std::path::PathBuf;
#[path = "support/files.rs"]
mod files;
use files::dnn_files;

fn comments(text: &str) -> Vec<String> {
    tokenize(text)
        .into_iter()
        .filter(|t| matches!(t.kind, Some(Tok::LineComment | Tok::DocComment | Tok::BlockComment)))
        .map(|t| text[t.start..t.end].trim_end().to_string())
        .collect()
}

fn ast_text(text: &str) -> String {
    print_ast(&parse(FileId(0), text).module)
}

/// Every file that parses, with whether it is expected to be in canonical form already.
fn parsable_files() -> Vec<(PathBuf, String, bool)> {
    let canonical = ["examples", "stdlib", "tests/fixtures", "tests/fixtures/modules"];
    let mut out = Vec::new();
    for dir in canonical.iter().chain(["tests/ui"].iter()) {
        for path in dnn_files(dir) {
            let Ok(text) = String::from_utf8(std::fs::read(&path).expect("readable")) else { continue };
            if parse(FileId(0), &text).diags.is_empty() {
                out.push((path, text, *dir != "tests/ui"));
            }
        }
    }
    out
}

#[test]
fn formatting_is_idempotent_and_keeps_the_ast_and_comments() {
    let files = parsable_files();
    assert!(files.len() >= 40, "expected the examples, fixtures, stdlib and ui files, found {}", files.len());
    for (path, text, _) in &files {
        let name = path.display();
        let once = format_source(FileId(0), text).unwrap_or_else(|d| panic!("{name} refused: {d:?}"));
        assert_eq!(ast_text(&once), ast_text(text), "{name}: formatting changed the AST");
        assert_eq!(format_tokens(&once), once, "{name}: formatting is not idempotent");
        assert_eq!(comments(&once), comments(text), "{name}: comments changed");
        assert!(once.ends_with('\n') && !once.ends_with("\n\n"), "{name}: not one final newline");
        assert!(!once.contains("\n\n\n"), "{name}: blank lines not collapsed");
        assert!(once.lines().all(|l| l == l.trim_end()), "{name}: trailing whitespace");
    }
}

#[test]
fn the_repository_is_in_canonical_form() {
    for (path, text, canonical) in parsable_files() {
        if canonical {
            assert_eq!(format_tokens(&text), text, "{} is not formatted", path.display());
        }
    }
}

#[test]
fn a_scrambled_file_formats_back_to_the_original() {
    // Remove every space that is not needed to separate words, then re-indent nothing:
    // the formatter must restore the canonical text exactly.
    for path in dnn_files("examples").into_iter().chain(dnn_files("tests/fixtures")) {
        let text = std::fs::read_to_string(&path).expect("readable");
        let mut scrambled = String::new();
        let tokens = tokenize(&text);
        for (i, t) in tokens.iter().enumerate() {
            let word = |k: Option<Tok>| {
                k.is_some_and(|k| !matches!(k, Tok::Newline))
                    && text[t.start..t.end].chars().all(|c| c.is_alphanumeric() || c == '_')
            };
            scrambled.push_str(&text[t.start..t.end]);
            if let Some(next) = tokens.get(i + 1) {
                let next_word =
                    text[next.start..next.end].chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
                let comment_next =
                    matches!(next.kind, Some(Tok::LineComment | Tok::DocComment | Tok::BlockComment));
                if (word(t.kind) && next_word) || comment_next || t.kind == Some(Tok::Newline) && i % 3 == 0 {
                    scrambled.push_str("   ");
                }
            }
        }
        scrambled.push_str("\n\n\n");
        assert_eq!(ast_text(&scrambled), ast_text(&text), "{}: the scramble changed the AST", path.display());
        assert_eq!(format_tokens(&scrambled), text, "{}", path.display());
    }
}

#[test]
fn files_with_syntax_errors_are_refused() {
    let text = "fn f(x: f32) -> f32 = x +\n";
    let errors = format_source(FileId(0), text).expect_err("a syntax error");
    assert!(errors.iter().all(|d| d.code == dnnc::diag::Code::E0001), "{errors:?}");
    assert!(!errors.is_empty());
}

fn dnnc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dnnc")).args(args).output().expect("the dnnc binary runs")
}

#[test]
fn the_fmt_command_checks_and_rewrites_files() {
    let dir = std::env::temp_dir().join(format!("dnnc-fmt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("messy.dnn");
    let path = file.to_str().expect("utf-8 temp path");
    std::fs::write(&file, "model  M(x:f32[B,4])=relu( x )\n").expect("write");
    assert!(!dnnc(&["fmt", "--check", path]).status.success(), "--check passed on a messy file");
    let printed = dnnc(&["fmt", path]);
    assert_eq!(String::from_utf8_lossy(&printed.stdout), "model M(x: f32[B, 4]) = relu(x)\n");
    assert!(dnnc(&["fmt", "--write", path]).status.success());
    assert!(dnnc(&["fmt", "--check", path]).status.success(), "--check failed after --write");
    std::fs::write(&file, "model M(x: f32[B, 4]) = relu(x +\n").expect("write");
    let refused = dnnc(&["fmt", "--write", path]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("error[E0001]"));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "model M(x: f32[B, 4]) = relu(x +\n");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn the_tokens_command_lists_positions_kinds_and_text() {
    let out = dnnc(&["tokens", "examples/mnist.dnn"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == "2:1 Use \"use\""), "{text}");
    assert!(text.lines().any(|l| l == "5:7 Ident \"Mlp\""), "{text}");
    let json = dnnc(&["tokens", "--json", "examples/mnist.dnn"]);
    let tokens: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    let list = tokens.as_array().expect("an array");
    assert_eq!(list.len(), text.lines().count());
    let source = std::fs::read_to_string("examples/mnist.dnn").expect("readable");
    // Every token's byte range holds its text: the positions are independent of the lexer's.
    for t in list {
        let (start, end) =
            (t["start"].as_u64().unwrap_or(0) as usize, t["end"].as_u64().unwrap_or(0) as usize);
        assert_eq!(&source[start..end], t["text"].as_str().unwrap_or("?"));
    }
}
