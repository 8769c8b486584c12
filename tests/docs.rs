//! The examples of `docs/language.md` are programs: every ```dnn block must compile, and
//! a block marked `error=CODE` must fail with exactly that code. They are also in
//! canonical `dnnc fmt` layout.

use dnnc::sema::check_source;

/// The ```dnn blocks of a markdown file: (expected error code, text).
fn dnn_blocks(markdown: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut current: Option<(Option<String>, String)> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None => {
                if let Some(info) = line.strip_prefix("```dnn") {
                    let code = info.trim().strip_prefix("error=").map(str::to_string);
                    current = Some((code, String::new()));
                }
            }
            Some(_) if line == "```" => out.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unterminated code block");
    out
}

#[test]
fn the_language_reference_examples_check_as_documented() {
    let markdown = std::fs::read_to_string("docs/language.md").expect("docs/language.md exists");
    let blocks = dnn_blocks(&markdown);
    assert!(blocks.len() >= 10, "only {} examples", blocks.len());
    for (i, (expected, text)) in blocks.iter().enumerate() {
        let checked = check_source(&format!("docs/language.md#{i}"), text);
        let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
        let codes: Vec<&str> = checked.diags.iter().map(|d| d.code.as_str()).collect();
        match expected {
            None => {
                assert!(checked.program.is_some() && codes.is_empty(), "example {i}:\n{text}\n{rendered}")
            }
            Some(code) => assert_eq!(codes, [code.as_str()], "example {i}:\n{text}\n{rendered}"),
        }
        assert_eq!(dnnc::syntax::format_tokens(text), *text, "example {i} is not formatted");
    }
}
