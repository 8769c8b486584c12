//! Graph simplification: constant folding with algebraic identities, common-subexpression
//! elimination and dead-code elimination.
//!
//! Every pass returns a new graph with the same name, inputs, parameters and outputs (in
//! order and by name); nodes keep their spans and types, and a node that replaces another
//! has exactly the replaced node's type. The verifier runs after each pass in debug builds.
//!
//! Identities used (each rewrite is exact unless said otherwise):
//! - an op whose operands are all `fill`s becomes a `fill`, its value computed by the op's
//!   own kernel in the node's element type (elementwise ops, casts, reshape, transpose,
//!   broadcast); `size_of` over literal dimensions becomes a `fill`;
//! - x + 0 = 0 + x = x (up to the sign of a zero x), x − 0 = x, x·1 = 1·x = x, x / 1 = x,
//!   x^1 = x, −(−x) = x, and reshape, broadcast, cast or transpose to what x already is = x;
//! - x·0 = 0·x = 0, which assumes x finite (NaN·0 and ∞·0 are NaN), as fast-math does;
//! - pad(a..) + pad(b..) = pad(a.., b..) when the two pads' windows are disjoint (the sum
//!   of the derivatives of slices of one tensor is one pad, a concatenation when the
//!   slices cover it);
//! - scan(b, ops, output: o) = scan(s, ops, output: o) when body `s` extends body `b`
//!   (same inputs, `b`'s nodes and outputs as its first ones), so one loop serves both:
//!   the forward loop and the saving loop of backpropagation through time;
//! - a per-step output of a loop that no node of the loop stacks is dropped from its body
//!   (carries always stay), and the body's nodes that only served it with it.

use super::{BinaryOp, Graph, Node, NodeId, Op, ScanOutput, UnaryOp};
use crate::ops::{self, EvalCtx, Value};
use crate::shape::{TensorType, const_numel};
use std::collections::HashMap;

/// Folds, merges and prunes until nothing changes (at most a few rounds).
pub fn simplify(graph: &Graph) -> Graph {
    let mut g = graph.clone();
    for _ in 0..4 {
        let before = g.nodes.len();
        let merged = prune_scan_outputs(&merge_scan_loops(&fold_constants(&g)));
        g = eliminate_dead_code(&eliminate_common_subexpressions(&merged));
        if g.nodes.len() == before {
            break;
        }
    }
    g
}

/// Whether scan `big` computes everything scan `small` does and more: the same loop
/// attributes and operands, and a body whose inputs are `small`'s and whose nodes and
/// outputs start with `small`'s (node ids in a body are positions, so equal prefixes are
/// equal values).
fn extends(big: &Node, small: &Node) -> bool {
    let (
        Op::Scan { body: b, carries: bk, sequences: bm, reverse: br, .. },
        Op::Scan { body: s, carries: sk, sequences: sm, reverse: sr, .. },
    ) = (&big.op, &small.op)
    else {
        return false;
    };
    let outputs = |g: &Graph| g.outputs.iter().map(|o| o.1).collect::<Vec<_>>();
    let (bo, so) = (outputs(b), outputs(s));
    (bk, bm, br) == (sk, sm, sr)
        && big.inputs == small.inputs
        && b.inputs == s.inputs
        && b.params.is_empty()
        && s.params.is_empty()
        && b.nodes.len() >= s.nodes.len()
        && b.nodes[..s.nodes.len()] == s.nodes[..]
        && bo.len() >= so.len()
        && bo[..so.len()] == so[..]
        && (b.nodes.len(), bo.len()) != (s.nodes.len(), so.len())
}

/// Makes every scan node whose loop another scan node over the same operands extends
/// read the largest such loop (see the module header), so that both are one loop.
pub fn merge_scan_loops(graph: &Graph) -> Graph {
    let mut g = graph.clone();
    let scans: Vec<usize> =
        (0..g.nodes.len()).filter(|&i| matches!(g.nodes[i].op, Op::Scan { .. })).collect();
    for &a in &scans {
        let largest = scans
            .iter()
            .filter(|&&b| b != a && extends(&graph.nodes[b], &graph.nodes[a]))
            .max_by_key(|&&b| match &graph.nodes[b].op {
                Op::Scan { body, .. } => (body.nodes.len(), body.outputs.len()),
                _ => (0, 0),
            });
        if let (Some(&b), Op::Scan { output, .. }) = (largest, &graph.nodes[a].op)
            && let Op::Scan { body, carries, sequences, reverse, .. } = &graph.nodes[b].op
        {
            g.nodes[a].op = Op::Scan {
                body: body.clone(),
                carries: *carries,
                sequences: *sequences,
                reverse: *reverse,
                output: *output,
            };
        }
    }
    super::debug_verify(&g, "simplify::merge_scan_loops");
    g
}

/// Whether two scan nodes are the same loop, differing at most in the result they give.
fn same_loop(a: &Node, b: &Node) -> bool {
    match (&a.op, &b.op) {
        (
            Op::Scan { body, carries, sequences, reverse, .. },
            Op::Scan { body: b2, carries: k2, sequences: m2, reverse: r2, .. },
        ) => a.inputs == b.inputs && (carries, sequences, reverse) == (k2, m2, r2) && body == b2,
        _ => false,
    }
}

/// Removes from every loop the per-step outputs that none of its live nodes stacks (see
/// the module header), renumbering the `stacked` results of the others.
pub fn prune_scan_outputs(graph: &Graph) -> Graph {
    let mut g = graph.clone();
    let live = graph.live_nodes();
    let scans: Vec<usize> =
        (0..graph.nodes.len()).filter(|&i| live[i] && matches!(graph.nodes[i].op, Op::Scan { .. })).collect();
    let mut done = vec![false; graph.nodes.len()];
    for &a in &scans {
        if done[a] {
            continue;
        }
        let group: Vec<usize> =
            scans.iter().copied().filter(|&b| same_loop(&graph.nodes[a], &graph.nodes[b])).collect();
        group.iter().for_each(|&b| done[b] = true);
        let Op::Scan { body, carries, .. } = &graph.nodes[a].op else { continue };
        let stacked = |j: usize| {
            group.iter().any(
                |&b| matches!(graph.nodes[b].op, Op::Scan { output: ScanOutput::Stacked(s), .. } if s == j),
            )
        };
        let keep: Vec<usize> = (0..body.outputs.len()).filter(|&j| j < *carries || stacked(j)).collect();
        if keep.len() == body.outputs.len() {
            continue;
        }
        let mut pruned = (**body).clone();
        pruned.outputs = keep.iter().map(|&j| body.outputs[j].clone()).collect();
        let pruned = Box::new(eliminate_dead_code(&pruned));
        for &b in &group {
            if let Op::Scan { carries, sequences, reverse, output, .. } = &graph.nodes[b].op {
                let output = match *output {
                    ScanOutput::Stacked(j) => {
                        ScanOutput::Stacked(keep.iter().position(|&k| k == j).unwrap_or(j))
                    }
                    other => other,
                };
                g.nodes[b].op = Op::Scan {
                    body: pruned.clone(),
                    carries: *carries,
                    sequences: *sequences,
                    reverse: *reverse,
                    output,
                };
            }
        }
    }
    super::debug_verify(&g, "simplify::prune_scan_outputs");
    g
}

/// Rebuilds a graph node by node, mapping old ids to new ones (the passes here and
/// `pool_first`).
pub(super) struct Rebuild {
    pub(super) out: Graph,
    pub(super) map: Vec<NodeId>,
}

impl Rebuild {
    pub(super) fn new(graph: &Graph) -> Rebuild {
        let mut out = graph.clone();
        out.nodes.clear();
        Rebuild { out, map: Vec::with_capacity(graph.nodes.len()) }
    }

    /// `node` with its operands renamed to their new ids.
    pub(super) fn renamed(&self, node: &Node) -> Node {
        Node { inputs: node.inputs.iter().map(|o| self.map[o.index()]).collect(), ..node.clone() }
    }

    pub(super) fn emit(&mut self, node: Node) -> NodeId {
        self.out.push(node.op, node.inputs, node.ty, node.span)
    }

    pub(super) fn finish(mut self, pass: &str) -> Graph {
        for (_, id) in &mut self.out.outputs {
            *id = self.map[id.index()];
        }
        super::debug_verify(&self.out, pass);
        self.out
    }
}

/// Constant folding and the algebraic identities of the module header.
pub fn fold_constants(graph: &Graph) -> Graph {
    let mut r = Rebuild::new(graph);
    for node in &graph.nodes {
        let node = r.renamed(node);
        let id = match fold(&mut r.out, &node) {
            Some(id) => id,
            None => r.emit(node),
        };
        r.map.push(id);
    }
    r.finish("simplify::fold_constants")
}

/// The value of a `fill` node.
fn fill_value(g: &Graph, id: NodeId) -> Option<f64> {
    match g.node(id).op {
        Op::Fill { value } => Some(value),
        _ => None,
    }
}

/// A node equal to `node` that already exists or is simpler, if there is one.
fn fold(g: &mut Graph, node: &Node) -> Option<NodeId> {
    let same_type = |g: &Graph, id: NodeId| (g.ty(id) == &node.ty).then_some(id);
    let fill = |g: &Graph, k: usize| node.inputs.get(k).and_then(|&i| fill_value(g, i));
    match &node.op {
        Op::SizeOf { axes } => {
            let dims: Vec<_> =
                axes.iter().filter_map(|&a| g.ty(node.inputs[0]).shape.get(a).cloned()).collect();
            let n = const_numel(&dims)?;
            return Some(g.push(Op::Fill { value: n as f64 }, vec![], node.ty.clone(), node.span));
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Select
        | Op::Cast { .. }
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::Broadcast
            if !node.inputs.is_empty() && (0..node.inputs.len()).all(|k| fill(g, k).is_some()) =>
        {
            let value = fold_uniform(g, node)?;
            return Some(g.push(Op::Fill { value }, vec![], node.ty.clone(), node.span));
        }
        _ => {}
    }
    let (a, b) = (node.inputs.first().copied(), node.inputs.get(1).copied());
    match &node.op {
        Op::Binary(BinaryOp::Add) if fill(g, 1) == Some(0.0) => same_type(g, a?),
        Op::Binary(BinaryOp::Add) if fill(g, 0) == Some(0.0) => same_type(g, b?),
        Op::Binary(BinaryOp::Sub) if fill(g, 1) == Some(0.0) => same_type(g, a?),
        Op::Binary(BinaryOp::Mul) if fill(g, 1) == Some(1.0) => same_type(g, a?),
        Op::Binary(BinaryOp::Mul) if fill(g, 0) == Some(1.0) => same_type(g, b?),
        Op::Binary(BinaryOp::Div | BinaryOp::Pow) if fill(g, 1) == Some(1.0) => same_type(g, a?),
        Op::Binary(BinaryOp::Mul) if fill(g, 0) == Some(0.0) || fill(g, 1) == Some(0.0) => {
            Some(g.push(Op::Fill { value: 0.0 }, vec![], node.ty.clone(), node.span))
        }
        Op::Unary(UnaryOp::Neg) => {
            let inner = g.node(a?);
            (inner.op == Op::Unary(UnaryOp::Neg)).then(|| inner.inputs[0]).and_then(|x| same_type(g, x))
        }
        Op::Binary(BinaryOp::Add) => merge_pads(g, node, a?, b?),
        Op::Transpose { perm } if perm.iter().enumerate().all(|(i, &p)| i == p) => same_type(g, a?),
        Op::Reshape | Op::Broadcast | Op::Cast { .. } => same_type(g, a?),
        _ => None,
    }
}

/// `a + b` as one pad when both are pads of the node's type with disjoint windows.
fn merge_pads(g: &mut Graph, node: &Node, a: NodeId, b: NodeId) -> Option<NodeId> {
    let (na, nb) = (g.node(a), g.node(b));
    let (Op::Pad { starts: sa, total }, Op::Pad { starts: sb, total: tb }) = (&na.op, &nb.op) else {
        return None;
    };
    if total != tb || g.ty(a) != &node.ty || g.ty(b) != &node.ty {
        return None;
    }
    let mut inputs = na.inputs.clone();
    inputs.extend(&nb.inputs);
    let starts: Vec<usize> = sa.iter().chain(sb).copied().collect();
    let op = Op::Pad { starts, total: *total };
    let types: Vec<&TensorType> = inputs.iter().map(|&i| g.ty(i)).collect();
    // The shape rule refuses overlapping windows.
    let ty = ops::infer(&op, &types, None).ok().filter(|t| t == &node.ty)?;
    Some(g.push(op, inputs, ty, node.span))
}

/// The value of an op applied to uniform (`fill`) operands, computed by its kernel on
/// scalars; `None` when the kernel fails (an integer division by zero stays for run time)
/// or the result does not read back exactly as an f64.
fn fold_uniform(g: &Graph, node: &Node) -> Option<f64> {
    let operands: Vec<Value> = node
        .inputs
        .iter()
        .map(|&i| fill_value(g, i).map(|v| Value::scalar(g.ty(i).dtype, v)))
        .collect::<Option<_>>()?;
    let refs: Vec<&Value> = operands.iter().collect();
    let dtype = node.ty.dtype;
    let value = match &node.op {
        // Layout ops move elements; a uniform tensor stays the same value.
        Op::Reshape | Op::Transpose { .. } | Op::Broadcast => operands[0].clone(),
        op => ops::eval(op, &refs, &EvalCtx { dtype, shape: Some(vec![]), seed: 0, step: 0 }).ok()?,
    };
    let v = value.first_f64()?;
    (value.dtype() == dtype && Value::scalar(dtype, v) == value).then_some(v)
}

/// Merges nodes with the same op, attributes, operands and type into the first of them.
/// The operands of commutative ops (add, mul, eq, and, or) are compared as a set.
pub fn eliminate_common_subexpressions(graph: &Graph) -> Graph {
    let mut r = Rebuild::new(graph);
    let mut seen: HashMap<(String, Vec<NodeId>, TensorType), NodeId> = HashMap::new();
    for node in &graph.nodes {
        let node = r.renamed(node);
        let mut operands = node.inputs.clone();
        let commutative = matches!(
            node.op,
            Op::Binary(BinaryOp::Add | BinaryOp::Mul | BinaryOp::Eq | BinaryOp::And | BinaryOp::Or)
        );
        if commutative {
            operands.sort();
        }
        // `Debug` prints attributes exactly, f64 fill values included.
        let key = (format!("{:?}", node.op), operands, node.ty.clone());
        let id = match seen.get(&key) {
            Some(&id) => id,
            None => {
                let id = r.emit(node);
                seen.insert(key, id);
                id
            }
        };
        r.map.push(id);
    }
    r.finish("simplify::eliminate_common_subexpressions")
}

/// Drops nodes no output depends on. Input and parameter nodes stay, like the
/// declarations they read.
pub fn eliminate_dead_code(graph: &Graph) -> Graph {
    let live = graph.live_nodes();
    let mut r = Rebuild::new(graph);
    for (i, node) in graph.nodes.iter().enumerate() {
        let keep = live[i] || matches!(node.op, Op::Input { .. } | Op::Param { .. });
        let id = if keep {
            let node = r.renamed(node);
            r.emit(node)
        } else {
            // Never read: no kept node uses a dropped one.
            NodeId(u32::MAX)
        };
        r.map.push(id);
    }
    r.finish("simplify::eliminate_dead_code")
}
