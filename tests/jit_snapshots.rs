//! Snapshots of the fused schedule with its buffer plan (`dnnc ir --stage fused`) for the
//! examples, and of the Cranelift IR of a small model's compiled step (`--stage clif`).
//!
//! The CLIF is that of an x86-64 host with FMA (multiply-adds are contracted to `fma`);
//! on a host without FMA the kernels differ and the snapshot must be regenerated there.

use dnnc::runtime::train::{print_clif, print_fused};
use dnnc::sema::Program;

fn program(path: &str) -> Program {
    let text = std::fs::read_to_string(path).expect("file exists");
    let mut checked = dnnc::sema::check_source(path, &text);
    checked.program.take().expect("checked program")
}

fn fused(path: &str) -> String {
    let p = program(path);
    let spec = p.trains.iter().find(|t| t.train_graph.is_some()).expect("a train block");
    print_fused(spec).expect("schedules")
}

#[test]
fn mnist_fused_schedule() {
    insta::assert_snapshot!(fused("examples/mnist.dnn"));
}

#[test]
fn binary_fused_schedule() {
    insta::assert_snapshot!(fused("examples/binary.dnn"));
}

#[test]
fn tiny_fused_schedule() {
    insta::assert_snapshot!(fused("tests/fixtures/jit/tiny.dnn"));
}

#[test]
fn tiny_compiled_step_clif() {
    let p = program("tests/fixtures/jit/tiny.dnn");
    let spec = p.trains.iter().find(|t| t.train_graph.is_some()).expect("a train block");
    insta::assert_snapshot!(print_clif(spec).expect("compiles"));
}

/// A recurrent model: the loop, and the input weight's gradient summed over the batch as
/// one product (`sum over the stack of`).
#[test]
fn rnn_synthetic_fused_schedule() {
    insta::assert_snapshot!(fused("examples/rnn_synthetic.dnn"));
}
