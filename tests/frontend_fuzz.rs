//! No input makes the front end panic or hang. Each case runs `check_bytes` (and, when the
//! text parses, `fmt`) under `catch_unwind`; a case passes when nothing panicked, a
//! rejected program reports at least one coded error, and its diagnostics render. Inputs:
//! binary garbage, invalid UTF-8, the empty file, 10,000-deep nesting on a thread with the
//! default 2 MiB test stack, huge literals, very long names, every prefix of every example
//! and fixture, and seeded byte- and token-level mutations of them.

use dnnc::diag::render_plain;
use dnnc::runtime::rng::Rng;
use dnnc::sema::check_bytes;
use dnnc::source::FileId;
use dnnc::syntax::lexer::tokenize;
use dnnc::syntax::{format_source, format_tokens, parse, print_ast};
use std::panic::{AssertUnwindSafe, catch_unwind};
#[path = "support/files.rs"]
mod files;
use files::dnn_files;

/// Checks one input; returns the codes of its errors. Panics (failing the test) with the
/// input when the front end panicked or misbehaved.
fn run_case(label: &str, bytes: &[u8]) -> Vec<String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let checked = check_bytes("fuzz.dnn", bytes);
        let rendered = render_plain(&checked.diags, &checked.sources);
        let codes: Vec<String> =
            checked.diags.iter().filter(|d| d.is_error()).map(|d| d.code.as_str().to_string()).collect();
        if checked.program.is_none() {
            assert!(!codes.is_empty(), "rejected without an error");
            assert!(rendered.contains("error[E"), "errors do not render: {rendered}");
        }
        if let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(formatted) = format_source(FileId(0), text)
        {
            let before = print_ast(&parse(FileId(0), text).module);
            assert_eq!(print_ast(&parse(FileId(0), &formatted).module), before, "fmt changed the AST");
            assert_eq!(format_tokens(&formatted), formatted, "fmt is not idempotent");
        }
        codes
    }));
    match outcome {
        Ok(codes) => codes,
        Err(_) => panic!("the front end panicked on case {label}: {:?}", String::from_utf8_lossy(bytes)),
    }
}

fn corpus() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in ["examples", "tests/fixtures"] {
        for p in dnn_files(dir) {
            out.push((p.display().to_string(), std::fs::read_to_string(&p).expect("readable")));
        }
    }
    out
}

#[test]
fn garbage_and_invalid_utf8_are_reported() {
    let mut rng = Rng::new(1);
    assert!(run_case("empty", b"").is_empty());
    for i in 0..300 {
        let len = rng.below(120) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        run_case(&format!("garbage {i}"), &bytes);
    }
    for bad in [&b"\xff"[..], b"model M(x: f32[B]) = x // \xc3", b"\xe2\x82", b"fn \xf0\x9f\x98 f"] {
        assert_eq!(run_case("invalid utf-8", bad), ["E0002"]);
    }
}

#[test]
fn huge_literals_and_long_names_are_reported() {
    let int = format!("model M(x: f32[B, 4]) = x * {}", "9".repeat(400));
    assert!(run_case("huge int", int.as_bytes()).contains(&"E0004".to_string()));
    let float = "model M(x: f32[B, 4]) = x * 1e999";
    assert!(run_case("huge float", float.as_bytes()).contains(&"E0004".to_string()));
    let dim = format!("model M(x: f32[B, {}]) = x", "7".repeat(30));
    assert!(!run_case("huge dim", dim.as_bytes()).is_empty());
    let name = "a".repeat(100_000);
    let long = format!("model M(x: f32[B, 4]) = x + {name}");
    assert_eq!(run_case("long name", long.as_bytes()), ["E0101"]);
}

/// Runs `f` on a thread with the default stack of Rust test threads (2 MiB).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn a thread")
        .join()
        .expect("the thread did not overflow its stack or panic")
}

#[test]
fn deep_nesting_is_refused_before_it_can_exhaust_the_stack() {
    let codes = on_small_stack(|| {
        let n = 10_000;
        let cases = [
            format!("model M(x: f32[B]) = {}x{}", "(".repeat(n), ")".repeat(n)),
            format!("model M(x: f32[B]) = {}x{}", "[".repeat(n), "]".repeat(n)),
            format!("model M(x: f32[B]) = {}x{}", "{".repeat(n), "}".repeat(n)),
            format!("model M(x: f32[B]) = {}x", "-".repeat(n)),
            format!("model M(x: f32[B]) = x{}", " + x".repeat(n)),
            format!("model M(x: f32[B]) = x{}", " ** x".repeat(n)),
            format!("model M(x: f32[B]) = relu{}", "(x)".repeat(n)),
            format!("model M(x: f32[B]) = x{}", ".a".repeat(n)),
            format!("fn f(x: f32) = {}x{}", "(".repeat(n), ")".repeat(n / 2)),
        ];
        cases.iter().map(|c| run_case("deep", c.as_bytes())).collect::<Vec<_>>()
    });
    for c in codes {
        assert_eq!(c, ["E0003"]);
    }
    // The deepest accepted nesting also fits in the small stack, through lowering.
    let ok = on_small_stack(|| {
        let d = dnnc::syntax::MAX_NESTING - 1;
        let body = format!("{}x{}", "(".repeat(d), ")".repeat(d));
        let chain = format!("x{}", " + x".repeat(dnnc::syntax::MAX_EXPR_DEPTH - 8));
        let text = format!("model M(x: f32[B]) = {body}\nmodel N(x: f32[B]) = {chain}\n");
        run_case("deepest accepted", text.as_bytes())
    });
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn every_prefix_of_every_example_is_handled() {
    let mut cases = 0;
    for (name, text) in corpus() {
        // Cut at every token boundary and one character into every token.
        let mut cuts: Vec<usize> = Vec::new();
        for t in tokenize(&text) {
            cuts.push(t.start);
            if let Some(c) = text[t.start..].chars().next()
                && t.start + c.len_utf8() < t.end
            {
                cuts.push(t.start + c.len_utf8());
            }
        }
        cuts.push(text.len());
        for cut in cuts {
            run_case(&format!("{name}[..{cut}]"), &text.as_bytes()[..cut]);
            cases += 1;
        }
    }
    assert!(cases > 1000, "only {cases} prefixes");
}

const INTERESTING: &[u8] = b"(){}[],:;=|>-+*/@.!\"\n_0123456789eBx ";

#[test]
fn random_byte_mutations_are_handled() {
    let mut rng = Rng::new(7);
    let corpus = corpus();
    for i in 0..600 {
        let (name, text) = &corpus[rng.below(corpus.len() as u64) as usize];
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            let byte = if rng.below(4) == 0 {
                rng.below(256) as u8
            } else {
                INTERESTING[rng.below(INTERESTING.len() as u64) as usize]
            };
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
        }
        run_case(&format!("{name} byte mutation {i}"), &bytes);
    }
}

#[test]
fn random_token_mutations_are_handled() {
    let mut rng = Rng::new(11);
    let corpus = corpus();
    let mut rejected = 0;
    for i in 0..600 {
        let (name, text) = &corpus[rng.below(corpus.len() as u64) as usize];
        let mut tokens: Vec<&str> = tokenize(text).iter().map(|t| &text[t.start..t.end]).collect();
        for _ in 0..1 + rng.below(3) {
            let n = tokens.len() as u64;
            let at = rng.below(n) as usize;
            match rng.below(3) {
                0 => {
                    tokens.remove(at);
                }
                1 => tokens.insert(at, tokens[at]),
                _ => {
                    let other = rng.below(n) as usize;
                    tokens.swap(at, other);
                }
            }
        }
        let mutated = tokens.join(" ");
        if !run_case(&format!("{name} token mutation {i}"), mutated.as_bytes()).is_empty() {
            rejected += 1;
        }
    }
    // Most mutations break the program; the check would be vacuous if none did.
    assert!(rejected > 300, "only {rejected} of 600 mutations were rejected");
}
