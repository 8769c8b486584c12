//! Diagnostics of convolutional programs: codes, the spans labels point at, the shapes
//! they name and their `help:` lines.

use dnnc::diag::{Code, Diag, explain, render_plain};
use dnnc::sema::check_source;
use dnnc::source::SourceMap;

/// The errors of checking `src`, with the source map and the rendered text for messages.
fn errors(src: &str) -> (Vec<Diag>, SourceMap, String) {
    let checked = check_source("user.dnn", src);
    let rendered = render_plain(&checked.diags, &checked.sources);
    let errors: Vec<Diag> = checked.diags.into_iter().filter(Diag::is_error).collect();
    assert!(checked.program.is_none() || errors.is_empty());
    (errors, checked.sources, rendered)
}

/// The one error of `src`, which must have `code`.
fn one_error(src: &str, code: Code) -> (Diag, SourceMap, String) {
    let (errors, sources, rendered) = errors(src);
    assert_eq!(errors.len(), 1, "{rendered}");
    assert_eq!(errors[0].code, code, "{rendered}");
    (errors[0].clone(), sources, rendered)
}

/// The text a span covers, when it lies in the user's file.
fn covered(sources: &SourceMap, file_name: &str, span: dnnc::source::Span) -> Option<String> {
    let text = sources.text(span.file);
    let in_user_file = sources.name(span.file) == file_name;
    in_user_file.then(|| text[span.start as usize..span.end as usize].to_string())
}

#[test]
fn a_dense_before_flatten_names_both_shapes_and_suggests_flatten() {
    let src = "use std::layers::{Conv2D, Dense, MaxPool2D}
model Cnn(x: f32[B, 28, 28, 1]) -> f32[B, 10] =
    x |> Conv2D(8, 3, act: relu) |> MaxPool2D(2) |> Dense(10)
";
    let (d, sources, rendered) = one_error(src, Code::E0205);
    assert_eq!(
        covered(&sources, "user.dnn", d.primary.span).as_deref(),
        Some("x |> Conv2D(8, 3, act: relu) |> MaxPool2D(2) |> Dense(10)"),
        "{rendered}"
    );
    assert!(d.primary.message.contains("f32[B, 13, 13, 10]"), "{rendered}");
    let declared =
        d.secondary.iter().find(|l| covered(&sources, "user.dnn", l.span).as_deref() == Some("f32[B, 10]"));
    assert!(declared.is_some(), "a label on the declared type:\n{rendered}");
    assert!(d.message.contains("f32[B, 10]"), "{rendered}");
    assert!(d.help.as_deref().is_some_and(|h| h.contains("Flatten()")), "{rendered}");
}

#[test]
fn a_pooling_window_larger_than_its_input_is_located() {
    // 8 -> conv 3 -> 6 -> pool 2 -> 3: a 4×4 window does not fit.
    let src = "use std::layers::{Conv2D, Dense, Flatten, MaxPool2D}
model Cnn(x: f32[B, 8, 8, 1]) -> f32[B, 10] =
    x |> Conv2D(8, 3) |> MaxPool2D(2) |> MaxPool2D(4) |> Flatten() |> Dense(10)
";
    let (d, sources, rendered) = one_error(src, Code::E0212);
    assert!(
        d.primary.message.contains("spanning 4") && d.primary.message.contains("height of 3"),
        "{rendered}"
    );
    let site =
        d.secondary.iter().find(|l| covered(&sources, "user.dnn", l.span).as_deref() == Some("MaxPool2D(4)"));
    assert!(site.is_some_and(|l| l.message.contains("MaxPool2D")), "a label on the user's call:\n{rendered}");
    assert!(d.secondary.iter().any(|l| l.message.contains("f32[B, 3, 3, 8]")), "{rendered}");
    assert!(d.help.as_deref().is_some_and(|h| h.contains("\"same\"")), "{rendered}");
}

#[test]
fn a_builtin_pooling_window_points_at_the_window() {
    let src = "model P(x: f32[B, 4, 4, 1]) -> f32[B, 1, 1, 1] = max_pool2d(x, [2, 5])\n";
    let (d, sources, rendered) = one_error(src, Code::E0212);
    assert_eq!(
        covered(&sources, "user.dnn", d.primary.span).as_deref(),
        Some("max_pool2d(x, [2, 5])"),
        "{rendered}"
    );
    assert!(d.primary.message.contains("width of 4"), "{rendered}");
    let labels: Vec<Option<String>> =
        d.secondary.iter().map(|l| covered(&sources, "user.dnn", l.span)).collect();
    assert!(labels.contains(&Some("[2, 5]".into())) && labels.contains(&Some("x".into())), "{rendered}");
    assert!(d.help.is_some());
}

#[test]
fn a_kernel_for_other_channels_is_refused() {
    let src = "layer Bad {
    param k: f32[3, 3, 2, 4] = zeros
    forward(x: f32[B, H, W, C]) = conv2d(x, k)
}
model M(x: f32[B, 8, 8, 1]) = x |> Bad()
";
    let (d, sources, rendered) = one_error(src, Code::E0213);
    assert_eq!(covered(&sources, "user.dnn", d.primary.span).as_deref(), Some("conv2d(x, k)"), "{rendered}");
    assert!(d.primary.message.contains("2 input channels, the input has 1"), "{rendered}");
    let labels: Vec<String> = d.secondary.iter().map(|l| l.message.clone()).collect();
    assert!(labels.contains(&"this is f32[3, 3, 2, 4]".to_string()), "{rendered}");
}

#[test]
fn bad_window_arguments_are_refused() {
    let model = |layer: &str| {
        format!("use std::layers::{{Conv2D, MaxPool2D}}\nmodel M(x: f32[B, 8, 8, 1]) = x |> {layer}\n")
    };
    let (d, _, rendered) = one_error(&model("Conv2D(4, 3, padding: \"full\")"), Code::E0213);
    assert!(
        d.message.contains("\"full\"") && d.help.as_deref().is_some_and(|h| h.contains("\"valid\"")),
        "{rendered}"
    );
    let (d, _, rendered) = one_error(&model("MaxPool2D(2, stride: 0)"), Code::E0213);
    assert!(d.message.contains("stride"), "{rendered}");
    let (d, _, rendered) = one_error(&model("MaxPool2D([2, 2, 2])"), Code::E0213);
    assert!(d.message.contains("window"), "{rendered}");
    let (_, _, rendered) = one_error(&model("Conv2D(4, 3, dilation: \"two\")"), Code::E0108);
    assert!(rendered.contains("dilation"), "{rendered}");
}

#[test]
fn update_state_takes_only_state() {
    let src = "layer L {
    param w: f32[N] = zeros
    forward(x: f32[B, N]) = { let _ = update_state(w, w); x }
}
model M(x: f32[B, 3]) = x |> L()
";
    let (d, sources, rendered) = one_error(src, Code::E0108);
    assert_eq!(covered(&sources, "user.dnn", d.primary.span).as_deref(), Some("w"), "{rendered}");
}

#[test]
fn the_new_codes_are_explained() {
    for code in ["E0212", "E0213"] {
        let text = explain(code).unwrap();
        assert!(text.contains("padding") && text.len() > 200, "{text}");
    }
}
