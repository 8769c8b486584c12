//! Stage snapshots: the `--stage ast` and `--stage typed` text of every `examples/*.dnn`
//! and `tests/fixtures/*.dnn`, plus checks of the properties each fixture exists for
//! (weight sharing, sublayer naming, dropout only while training, imports), which hold
//! whatever the exact text.

use dnnc::ir::{Graph, Op};
use dnnc::sema::{Program, check_bytes, print_program};
use dnnc::syntax::print_ast;
use std::path::PathBuf;
#[path = "support/files.rs"]
mod files;
use files::dnn_files;

fn check(path: &str) -> Program {
    let bytes = std::fs::read(path).expect("readable file");
    let checked = check_bytes(path, &bytes);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    assert!(checked.diags.is_empty(), "{path} has diagnostics:\n{rendered}");
    checked.program.expect("a program without errors")
}

#[test]
fn every_example_and_fixture_matches_its_snapshots() {
    let files: Vec<PathBuf> = dnn_files("examples").into_iter().chain(dnn_files("tests/fixtures")).collect();
    assert!(files.len() >= 10, "expected the examples and at least 8 fixtures, found {}", files.len());
    for path in files {
        let name = path.to_string_lossy().into_owned();
        let program = check(&name);
        let dir = path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()).unwrap_or("");
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name");
        insta::assert_snapshot!(format!("{dir}__{stem}.ast"), print_ast(&program.ast));
        insta::assert_snapshot!(format!("{dir}__{stem}.typed"), print_program(&program));
    }
}

fn model<'p>(p: &'p Program, name: &str) -> &'p Graph {
    &p.models.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no model {name}")).graph
}

fn param_names(g: &Graph) -> Vec<&str> {
    g.params.iter().map(|p| p.name.as_str()).collect()
}

fn count_ops(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.nodes.iter().filter(|n| pred(&n.op)).count()
}

#[test]
fn one_instance_called_twice_shares_its_weights() {
    let p = check("tests/fixtures/weight_sharing.dnn");
    let shared = model(&p, "Shared");
    assert_eq!(param_names(shared), ["dense.w", "dense.b"]);
    assert_eq!(count_ops(shared, |o| *o == Op::MatMul), 2);
    let separate = model(&p, "Separate");
    assert_eq!(param_names(separate), ["dense.w", "dense.b", "dense_1.w", "dense_1.b"]);
}

#[test]
fn sublayers_are_named_under_their_owner() {
    let p = check("tests/fixtures/sublayer.dnn");
    let names = param_names(model(&p, "Deep"));
    for want in ["residual.scale", "residual.dense.w", "residual_1.dense.b", "dense.w"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert_eq!(names.len(), 8);
}

#[test]
fn dropout_draws_random_numbers_only_while_training() {
    let p = check("tests/fixtures/dropout.dnn");
    let is_random = |o: &Op| matches!(o, Op::Random { .. });
    assert_eq!(count_ops(model(&p, "Regularized"), is_random), 0);
    let spec = &p.trains[0];
    let train = spec.train_graph.as_ref().expect("a train block has a training graph");
    assert_eq!(count_ops(train, is_random), 1);
    assert_eq!(count_ops(&spec.eval_graph, is_random), 0);
}

#[test]
fn prelu_learns_one_slope_per_feature() {
    let p = check("tests/fixtures/prelu.dnn");
    let g = model(&p, "Leaky");
    let alpha = g.params.iter().find(|q| q.name == "prelu.alpha").expect("a prelu.alpha parameter");
    assert_eq!(alpha.ty.to_string(), "f32[16]");
}

#[test]
fn imported_layers_and_functions_are_inlined() {
    let p = check("tests/fixtures/imports.dnn");
    let g = model(&p, "Imported");
    assert_eq!(param_names(g)[..2], ["mlp_block.dense.w", "mlp_block.dense.b"]);
    // gelu_approx is applied twice (inside the block and after it): two tanh nodes.
    assert_eq!(count_ops(g, |o| matches!(o, Op::Unary(dnnc::ir::UnaryOp::Tanh))), 2);
    let out = g.output("output").expect("an output");
    assert_eq!(g.ty(out).to_string(), "f32[B, 4]");
}

#[test]
fn doc_comments_reach_the_ast() {
    let p = check("tests/fixtures/docs_and_eval.dnn");
    let ast = print_ast(&p.ast);
    assert!(ast.contains("(doc \"A convolution-free image classifier.\\n\\nDoc comments span"), "{ast}");
    assert!(ast.contains("(doc \"Grey images, values in [0, 1].\")"), "{ast}");
}
