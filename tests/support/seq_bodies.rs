//! Scan bodies shared by the sequence tests: a simple RNN step, a two-carry (LSTM-like)
//! step and a step that looks its input up in an embedding table.

#![allow(dead_code)]

use dnnc::ir::{BinaryOp, Graph, NodeId, Op, ScanOutput, UnaryOp};
use dnnc::shape::{DType, Dim, Shape, TensorType};
use dnnc::source::Span;

fn sp() -> Span {
    Span::dummy()
}

pub fn dims(d: &str) -> Shape {
    d.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<i64>().map(Dim::Const).unwrap_or_else(|_| Dim::sym(d)))
        .collect()
}

pub fn f32t(d: &str) -> TensorType {
    TensorType::new(DType::F32, dims(d))
}

pub fn i64t(d: &str) -> TensorType {
    TensorType::new(DType::I64, dims(d))
}

/// h' = tanh(x @ wx + h @ wh + b); outputs (h', h' · h).
/// Inputs: h f32[B, 3], x f32[B, 2], wx f32[2, 3], wh f32[3, 3], b f32[3].
pub fn rnn_body() -> Graph {
    let mut g = Graph::new("rnn_step");
    let h = g.add_input("h", f32t("B, 3"), sp());
    let x = g.add_input("x", f32t("B, 2"), sp());
    let wx = g.add_input("wx", f32t("2, 3"), sp());
    let wh = g.add_input("wh", f32t("3, 3"), sp());
    let b = g.add_input("b", f32t("3"), sp());
    let new_h = rnn_step(&mut g, h, x, wx, wh, b).unwrap();
    let y = g.binary(BinaryOp::Mul, new_h, h, sp()).unwrap();
    g.outputs = vec![("h".into(), new_h), ("y".into(), y)];
    g
}

/// tanh(x @ wx + h @ wh + b), built in any graph (the unrolled tests reuse it).
pub fn rnn_step(
    g: &mut Graph,
    h: NodeId,
    x: NodeId,
    wx: NodeId,
    wh: NodeId,
    b: NodeId,
) -> Result<NodeId, dnnc::ops::ShapeError> {
    let a = g.matmul(x, wx, sp())?;
    let r = g.matmul(h, wh, sp())?;
    let s = g.binary(BinaryOp::Add, a, r, sp())?;
    let s = g.binary(BinaryOp::Add, s, b, sp())?;
    g.unary(UnaryOp::Tanh, s, sp())
}

/// c' = c · σ(h @ u) + tanh(x @ w), h' = tanh(c') · σ(x @ w); outputs (h', c', h').
/// Inputs: h, c f32[B, 3], x f32[B, 2], w f32[2, 3], u f32[3, 3].
pub fn two_carry_body() -> Graph {
    let mut g = Graph::new("cell_step");
    let h = g.add_input("h", f32t("B, 3"), sp());
    let c = g.add_input("c", f32t("B, 3"), sp());
    let x = g.add_input("x", f32t("B, 2"), sp());
    let w = g.add_input("w", f32t("2, 3"), sp());
    let u = g.add_input("u", f32t("3, 3"), sp());
    let xw = g.matmul(x, w, sp()).unwrap();
    let hu = g.matmul(h, u, sp()).unwrap();
    let f = g.unary(UnaryOp::Sigmoid, hu, sp()).unwrap();
    let keep = g.binary(BinaryOp::Mul, c, f, sp()).unwrap();
    let add = g.unary(UnaryOp::Tanh, xw, sp()).unwrap();
    let new_c = g.binary(BinaryOp::Add, keep, add, sp()).unwrap();
    let o = g.unary(UnaryOp::Sigmoid, xw, sp()).unwrap();
    let tc = g.unary(UnaryOp::Tanh, new_c, sp()).unwrap();
    let new_h = g.binary(BinaryOp::Mul, tc, o, sp()).unwrap();
    g.outputs = vec![("h".into(), new_h), ("c".into(), new_c), ("y".into(), new_h)];
    g
}

/// h' = tanh(gather(table, ids) + h @ wh).
/// Inputs: h f32[B, 3], ids i64[B], table f32[5, 3], wh f32[3, 3].
pub fn embedding_body() -> Graph {
    let mut g = Graph::new("embed_step");
    let h = g.add_input("h", f32t("B, 3"), sp());
    let ids = g.add_input("ids", i64t("B"), sp());
    let table = g.add_input("table", f32t("5, 3"), sp());
    let wh = g.add_input("wh", f32t("3, 3"), sp());
    let e = g.add(Op::Gather, &[table, ids], None, sp()).unwrap();
    let r = g.matmul(h, wh, sp()).unwrap();
    let s = g.binary(BinaryOp::Add, e, r, sp()).unwrap();
    let new_h = g.unary(UnaryOp::Tanh, s, sp()).unwrap();
    g.outputs = vec![("h".into(), new_h)];
    g
}

/// A scan node over `body` with its operands.
pub fn scan(
    g: &mut Graph,
    body: Graph,
    carries: usize,
    sequences: usize,
    reverse: bool,
    output: ScanOutput,
    operands: &[NodeId],
) -> Result<NodeId, dnnc::ops::ShapeError> {
    let op = Op::Scan { body: Box::new(body), carries, sequences, reverse, output };
    g.add(op, operands, None, sp())
}
