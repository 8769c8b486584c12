//! The stable text form of a graph.
//!
//! ```text
//! graph Mlp(x: f32[B, 28, 28]) {
//!   param %p0 dense.w: f32[784, 10] = glorot_uniform
//!   %0 = input{0} : f32[B, 28, 28]
//!   %1 = reshape(%0) : f32[B, 784]
//!   %2 = param{0} : f32[784, 10]
//!   %3 = matmul(%1, %2) : f32[B, 10]
//!   return logits = %3
//! }
//! ```
//! One line per node in arena order; operands as `%N`; attributes in braces after the op
//! name; the result type after a colon. Frozen (non-trainable) parameters say `state`.
//! A `scan` node is followed by its body, printed the same way and indented, the first
//! time that body appears (nodes reading other results of the same loop share it).

use super::{Graph, Op};
use std::fmt::Write;

pub fn print_graph(g: &Graph) -> String {
    let mut out = String::new();
    let args: Vec<String> = g.inputs.iter().map(|i| format!("{}: {}", i.name, i.ty)).collect();
    let _ = writeln!(out, "graph {}({}) {{", g.name, args.join(", "));
    for (i, p) in g.params.iter().enumerate() {
        let kind = if p.trainable { "param" } else { "state" };
        let _ = writeln!(out, "  {kind} %p{i} {}: {} = {}", p.name, p.ty, p.init.name());
    }
    let mut bodies: Vec<&Graph> = Vec::new();
    for id in g.ids() {
        let n = g.node(id);
        let operands: Vec<String> = n.inputs.iter().map(|i| format!("%{}", i.0)).collect();
        let _ = writeln!(out, "  %{} = {}({}) : {}", id.0, n.op, operands.join(", "), n.ty);
        if let Op::Scan { body, .. } = &n.op
            && !bodies.contains(&body.as_ref())
        {
            bodies.push(body);
            for line in print_graph(body).lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    for (name, id) in &g.outputs {
        let _ = writeln!(out, "  return {name} = %{}", id.0);
    }
    out.push_str("}\n");
    out
}
