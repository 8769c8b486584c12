//! The text form of a specialized plan, printed after the schedule by
//! `dnnc ir --stage fused`: the instructions in order and the buffer plan.
//!
//! ```text
//! plan for B = 32: 31 instructions, 14 kernels compiled, arena 151.5 KiB (12 buffers)
//!   i0   gemm [32x784] @ [784x128] -> arena+0
//!   i1   kernel0 32x128 (in: arena+0, ext3) -> arena+0
//! ```

use super::specialize::{Base, Instr, Plan, Ptr, ZeroSkip};
use std::fmt::{self, Write};

fn ptr(p: &Ptr) -> String {
    match p.base {
        Base::Arena => format!("arena+{}", p.offset),
        Base::IArena => format!("iarena+{}", p.offset),
        Base::Ext(k) if p.offset == 0 => format!("ext{k}"),
        Base::Ext(k) => format!("ext{k}+{}", p.offset),
    }
}

fn list(ps: &[Ptr]) -> String {
    ps.iter().map(ptr).collect::<Vec<_>>().join(", ")
}

impl Plan {
    /// One instruction's line, without its index.
    fn line(&self, instr: &Instr) -> String {
        match instr {
            Instr::Kernel { kernel, inputs, outputs, rows, cols } => {
                let exact = if self.kernels[*kernel].1 { "" } else { " exact" };
                format!("kernel{kernel}{exact} {rows}x{cols} ({}) -> {}", list(inputs), list(outputs))
            }
            Instr::Gemm { a, b, c, layouts: [la, lb, _], threads, skip_zero_a } => format!(
                "gemm {}x[{}x{}] @ [{}x{}] ({} @ {}) -> {}{}{}",
                la.batch,
                la.matrix.rows,
                la.matrix.cols,
                lb.matrix.rows,
                lb.matrix.cols,
                ptr(a),
                ptr(b),
                ptr(c),
                if *threads > 1 { format!(" on {threads} threads") } else { String::new() },
                match skip_zero_a {
                    ZeroSkip::Off => "",
                    ZeroSkip::Guarded => ", skipping the batch's zeros",
                    ZeroSkip::CheckedB { .. } => ", skipping the batch's zeros if B is finite",
                    ZeroSkip::FiniteParam =>
                        ", skipping the batch's zeros if the parameters are checked finite",
                }
            ),
            Instr::OneHot { labels, out: o, rows, depth } => {
                format!("one_hot {rows}x{depth} ({}) -> {}", ptr(labels), ptr(o))
            }
            Instr::Window { node, kernel, a, b, out: o, scratch, threads } => {
                let operands = if kernel.lens()[1] > 0 { list(&[*a, *b]) } else { ptr(a) };
                let threads = if *threads > 1 { format!(" on {threads} threads") } else { String::new() };
                let scratch = match kernel.scratch_len(1) {
                    0 => String::new(),
                    _ => format!(", scratch {}", ptr(scratch)),
                };
                format!("{} %{} ({operands}) -> {}{scratch}{threads}", kernel.name(), node.0, ptr(o))
            }
            Instr::Fallback { node, operands, out: o } => {
                let ins: Vec<Ptr> = operands.iter().map(|x| x.0).collect();
                format!("reference %{} ({}) -> {}", node.0, list(&ins), ptr(&o.0))
            }
            Instr::Norm { grads, global, .. } => {
                let gs: Vec<Ptr> = grads.iter().map(|g| g.0).collect();
                format!("clip_norm{} ({})", if *global { " global" } else { "" }, list(&gs))
            }
            Instr::Update { kind, param, grad, slots, len, threads, .. } => {
                let threads = if *threads > 1 { format!(" on {threads} threads") } else { String::new() };
                let mut operands = vec![*param, *grad];
                operands.extend(slots);
                format!("update {} {len} ({}){threads}", kind.name(), list(&operands))
            }
            Instr::Columns { from, to, cols: c } => {
                let parts: Vec<String> = c
                    .parts
                    .iter()
                    .map(|p| format!("[{}..{}] -> [{}..]", p.from_start, p.from_start + p.len, p.to_start))
                    .collect();
                let zero = if c.zero { ", zero-filled" } else { "" };
                let (rows, width) = (c.rows, c.to_width);
                format!("columns {rows}x{width} {}{zero} ({}) -> {}", parts.join(" "), list(from), ptr(to))
            }
            Instr::Copy { from, to, len } => format!("copy {len} ({}) -> {}", ptr(from), ptr(to)),
            Instr::Accumulate { x, out: o, acc } => {
                format!("accumulate {:?} ({}) -> {}", acc.dims, ptr(x), ptr(o))
            }
            Instr::Random { dist, stream, out: o, len } => {
                format!("random {dist:?} stream {stream} {len} -> {}", ptr(o))
            }
            Instr::Guard { values } => {
                let checked: Vec<String> = values.iter().map(|(n, _, _)| format!("%{}", n.0)).collect();
                format!("guard finite {}", checked.join(", "))
            }
            Instr::Scan(lp) => {
                let ins: Vec<Ptr> = lp.operands.iter().map(|x| x.0).collect();
                let outs: Vec<Ptr> = lp.results.iter().map(|x| x.1).collect();
                let halves = match &lp.halves {
                    Some(h) => format!(", batch rows ..{} and {}.. side by side", h.rows, h.rows),
                    None => String::new(),
                };
                format!(
                    "scan %{}{} {} steps, body of {} instructions{halves} ({}) -> {}",
                    lp.node.0,
                    if lp.reverse { " reverse" } else { "" },
                    lp.steps,
                    lp.plan.instrs.len(),
                    list(&ins),
                    list(&outs)
                )
            }
            Instr::Gather { table, ids, out: o, count, width, .. } => {
                format!("gather {count}x{width} ({}, {}) -> {}", ptr(table), ptr(ids), ptr(o))
            }
            Instr::ScatterAdd { ids, g, out: o, rows, width, .. } => {
                format!("scatter_add {rows}x{width} ({}, {}) -> {}", ptr(ids), ptr(g), ptr(o))
            }
            Instr::CastI64 { from, to, len } => {
                format!("cast_i64 {len} ({}) -> {}", ptr(from), ptr(to))
            }
            Instr::ProductUpdate { product, update, grad } => {
                format!(
                    "{}, then per finished block of %{}: {}",
                    self.line(product),
                    grad.0,
                    self.line(update)
                )
            }
        }
    }

    /// The plan as text; `bindings` names the symbol values it was specialized for.
    pub fn describe(&self, bindings: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "plan for {bindings}: {} instructions, {} kernels compiled, arena {:.1} KiB ({} buffers)",
            self.instrs.len(),
            self.kernels.len(),
            self.arena_len as f64 * 4.0 / 1024.0,
            self.buffers.len()
        );
        for (k, e) in self.exts.iter().enumerate() {
            let rw = if e.written { "read-write" } else { "read" };
            let _ = writeln!(out, "  ext{k:<3} {} ({} {}, {rw})", e.name, e.len, e.dtype);
        }
        for (i, instr) in self.instrs.iter().enumerate() {
            let _ = write!(out, "  i{i:<4}");
            let _ = writeln!(out, "{}", self.line(instr));
        }
        let _ = writeln!(out, "  buffers (node: arena range, live instructions):");
        for b in &self.buffers {
            let _ = writeln!(
                out,
                "    %{:<4} {}..{} i{}..i{}",
                b.node.0,
                b.offset,
                b.offset + b.len,
                b.first,
                b.last
            );
        }
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("the bound symbols"))
    }
}
