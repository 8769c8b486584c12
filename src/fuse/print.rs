//! The text form of a schedule, for `dnnc ir --stage fused`.
//!
//! ```text
//! schedule Mlp: 7 kernels, 6 matrix products, 2 other steps
//!   s0  matmul %4 = %1 @ %2 : f32[B, 128]
//!   s1  kernel [B, 128] (epilogue of s0)
//!         in0 = %4 full, in1 = %3 row
//!         %5 = add(in0, in1)
//! ```
//! Steps in execution order; a kernel lists what it reads (`inN` with its access) and one
//! line per stored output with the expression it computes, inlined producers included.
//! Operands that are transposed views print as `%N^T`.

use super::{Loc, MatOperand, Schedule, StepKind};
use crate::codegen::{Access, KernelExpr, ReduceAxis};
use crate::ir::{Op, fmt_f64};
use crate::shape::fmt_shape;
use std::fmt::Write;

/// Writes a kernel expression as nested calls: `maximum(add(in0, in1), 0.0)`.
pub fn write_kernel_expr(e: &KernelExpr, out: &mut String) {
    match e {
        KernelExpr::Input(i) => {
            let _ = write!(out, "in{i}");
        }
        KernelExpr::Const(v) => out.push_str(&fmt_f64(f64::from(*v))),
        KernelExpr::Unary(op, x) => {
            let _ = write!(out, "{}(", Op::Unary(*op).name());
            write_kernel_expr(x, out);
            out.push(')');
        }
        KernelExpr::Binary(op, a, b) => {
            let _ = write!(out, "{}(", Op::Binary(*op).name());
            write_kernel_expr(a, out);
            out.push_str(", ");
            write_kernel_expr(b, out);
            out.push(')');
        }
        KernelExpr::Select(c, a, b) => {
            out.push_str("select(");
            for (k, x) in [c, a, b].into_iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                write_kernel_expr(x, out);
            }
            out.push(')');
        }
    }
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Full => "full",
        Access::Row => "row",
        Access::Col => "col",
        Access::Scalar => "scalar",
    }
}

fn operand(m: &MatOperand) -> String {
    format!("%{}{}", m.node.0, if m.transposed { "^T" } else { "" })
}

fn reads(inputs: &[(crate::ir::NodeId, Access)]) -> String {
    let parts: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(k, (n, a))| format!("in{k} = %{} {}", n.0, access_name(*a)))
        .collect();
    if parts.is_empty() { "(no inputs)".into() } else { parts.join(", ") }
}

/// The schedule as text.
pub fn print_schedule(s: &Schedule) -> String {
    let g = &s.graph;
    let mut out = String::new();
    let (kernels, products, others) = s.counts();
    let _ = writeln!(
        out,
        "schedule {}: {kernels} kernels, {products} matrix products, {others} other steps",
        g.name
    );
    for (i, step) in s.steps.iter().enumerate() {
        let _ = write!(out, "  s{i:<3}");
        match &step.kind {
            StepKind::Elementwise { domain, inputs, outputs, exprs } => {
                let epilogue = s
                    .steps
                    .iter()
                    .position(|p| matches!(p.kind, StepKind::MatMul { epilogue: Some(e), .. } if e == i));
                let tag = epilogue.map(|p| format!(" (epilogue of s{p})")).unwrap_or_default();
                let _ = writeln!(out, "kernel {}{tag}", fmt_shape(domain));
                let _ = writeln!(out, "        {}", reads(inputs));
                for (n, e) in outputs.iter().zip(exprs) {
                    let mut text = String::new();
                    write_kernel_expr(e, &mut text);
                    let _ = writeln!(out, "        %{} = {text}", n.0);
                }
            }
            StepKind::Reduce { node, domain, split, axis, op, inputs, expr } => {
                let over = match axis {
                    ReduceAxis::Cols => "columns",
                    ReduceAxis::Rows => "rows",
                };
                let (rows, cols) = (fmt_shape(&domain[..*split]), fmt_shape(&domain[*split..]));
                let name = Op::Reduce { op: *op, axes: Vec::new(), keep: false }.name();
                let _ = writeln!(out, "kernel {name} over {over}, rows {rows} x columns {cols}");
                let _ = writeln!(out, "        {}", reads(inputs));
                let mut text = String::new();
                write_kernel_expr(expr, &mut text);
                let _ = writeln!(out, "        %{} = {name}({text}) : {}", node.0, g.ty(*node));
            }
            StepKind::MatMul { node, a, b, summed: false, .. } => {
                let _ =
                    writeln!(out, "matmul %{} = {} @ {} : {}", node.0, operand(a), operand(b), g.ty(*node));
            }
            StepKind::MatMul { node, a, b, summed: true, .. } => {
                let (x, y) = (operand(a), operand(b));
                let _ =
                    writeln!(out, "matmul %{} = sum over the stack of {x} @ {y} : {}", node.0, g.ty(*node));
            }
            StepKind::OneHot { node, labels, depth } => {
                let _ = writeln!(
                    out,
                    "one_hot %{} = one_hot{{depth={depth}}}(%{}) : {}",
                    node.0,
                    labels.0,
                    g.ty(*node)
                );
            }
            StepKind::Constant { node } => {
                let _ = writeln!(out, "constant %{} = {} : {}", node.0, g.node(*node).op, g.ty(*node));
            }
            StepKind::Fallback { node } => {
                let n = g.node(*node);
                let args: Vec<String> = n.inputs.iter().map(|i| format!("%{}", i.0)).collect();
                let _ = writeln!(out, "reference %{} = {}({}) : {}", node.0, n.op, args.join(", "), n.ty);
            }
        }
    }
    let aliases: Vec<String> = s
        .locs
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            Loc::Alias(to) => Some(format!("%{i} = %{}", to.0)),
            Loc::Transposed(to) => Some(format!("%{i} = %{}^T", to.0)),
            _ => None,
        })
        .collect();
    if !aliases.is_empty() {
        let _ = writeln!(out, "  views: {}", aliases.join(", "));
    }
    let outputs: Vec<String> =
        g.outputs.iter().map(|(n, id)| format!("{n} = %{}", s.storage(*id).0)).collect();
    let _ = writeln!(out, "  outputs: {}", outputs.join(", "));
    out
}
