//! Gradient checks of every primitive by central differences in f64.
//!
//! `cases_for` matches every `Op` variant exhaustively, so a new op does not compile here
//! until it has a case; `all_ops` lists one op per variant (its helper matches make a new
//! unary or binary op a compile error too). Each case builds `out = f(params)` and checks
//! the loss `sum(out · w)` with random weights `w`, so every element of the gradient
//! matters. Values are drawn to stay away from kinks: lattices keep max/min/comparison
//! operands apart, log/sqrt/pow bases are positive, divisors and abs/sign operands avoid 0.

use dnnc::autodiff::{GradCheckOptions, VjpRules, check_gradients, check_gradients_with};
use dnnc::ir::{
    BinaryOp, Distribution, Graph, Init, NodeId, Op, Padding, ParamInfo, PoolKind, ReduceOp, ScanOutput,
    UnaryOp,
};
use dnnc::ops::{self, ShapeError, Value};
use dnnc::runtime::rng::Rng;
use dnnc::shape::{DType, Dim, Shape, SymEnv, TensorType};
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};

#[path = "support/seq_bodies.rs"]
mod seq_bodies;

fn sp() -> Span {
    Span::dummy()
}

/// How a parameter's values are drawn.
#[derive(Clone, Copy)]
enum Gen {
    /// U(-1.5, 1.5).
    Any,
    /// U(0.5, 2).
    Positive,
    /// ±U(0.2, 1.5).
    AwayFromZero,
    /// Multiples of 0.2 in [-2, 2] plus the offset: two lattices with offsets 0 and 0.1
    /// never come closer than 0.1.
    Lattice(f64),
    /// A permutation of 0.1·(0..n) minus a constant: all distinct.
    Distinct,
}

/// A parameter: its declared shape (symbols allowed), the concrete shape and its values.
struct P(&'static str, &'static [usize], Gen);

type Build = Box<dyn Fn(&mut Graph, &[NodeId]) -> Result<NodeId, ShapeError>>;

struct Case {
    name: String,
    params: Vec<P>,
    build: Build,
}

fn case(
    name: &str,
    params: Vec<P>,
    build: impl Fn(&mut Graph, &[NodeId]) -> Result<NodeId, ShapeError> + 'static,
) -> Case {
    Case { name: name.to_string(), params, build: Box::new(build) }
}

fn shape(dims: &str) -> Shape {
    dims.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<i64>().map(Dim::Const).unwrap_or_else(|_| Dim::sym(d)))
        .collect()
}

fn f32t(dims: &str) -> TensorType {
    TensorType::new(DType::F32, shape(dims))
}

fn draw(values_from: Gen, n: usize, rng: &mut Rng) -> Vec<f64> {
    match values_from {
        Gen::Any => (0..n).map(|_| rng.uniform() * 3.0 - 1.5).collect(),
        Gen::Positive => (0..n).map(|_| 0.5 + rng.uniform() * 1.5).collect(),
        Gen::AwayFromZero => (0..n)
            .map(|_| {
                let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
                sign * (0.2 + rng.uniform() * 1.3)
            })
            .collect(),
        Gen::Lattice(offset) => (0..n).map(|_| (rng.below(21) as f64 - 10.0) * 0.2 + offset).collect(),
        Gen::Distinct => {
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - 0.05 * n as f64).collect();
            rng.shuffle(&mut v);
            v
        }
    }
}

/// Random values for an input of type `ty`: uniform floats, or labels in 0..4.
fn input_value(ty: &TensorType, env: &SymEnv, rng: &mut Rng) -> Value {
    let dims = env.resolve_shape(&ty.shape).expect("case inputs use only symbols the parameters bind");
    let n = dims.iter().product();
    let v = ArrayD::from_shape_vec(IxDyn(&dims), draw(Gen::Any, n, rng)).unwrap();
    match ty.dtype {
        DType::I64 => Value::I64(v.mapv(|x| ((x + 1.5) * 4.0 / 3.0).floor() as i64)),
        dtype => Value::F64(v).cast(dtype),
    }
}

fn run_case(c: &Case, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut g = Graph::new(c.name.clone());
    let mut env = SymEnv::new();
    let mut nodes = Vec::new();
    let mut values = Vec::new();
    for (i, P(dims, concrete, values_from)) in c.params.iter().enumerate() {
        let ty = f32t(dims);
        for (d, &n) in ty.shape.iter().zip(concrete.iter()) {
            if let Dim::Sym(s) = d {
                env.bind(s, n).unwrap();
            }
        }
        let n = concrete.iter().product();
        values.push(Value::F64(
            ArrayD::from_shape_vec(IxDyn(concrete), draw(*values_from, n, &mut rng)).unwrap(),
        ));
        let info = ParamInfo { name: format!("p{i}"), ty, init: Init::Zeros, trainable: true, span: sp() };
        nodes.push(g.add_param(info));
    }
    let out = (c.build)(&mut g, &nodes).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let out = if g.ty(out).dtype.is_float() { out } else { g.cast(out, DType::F32, sp()).unwrap() };
    let w = g.add_input("w", g.ty(out).clone(), sp());
    let weighted = g.binary(BinaryOp::Mul, out, w, sp()).unwrap();
    let axes = (0..g.ty(weighted).rank()).collect();
    let loss = g.reduce(ReduceOp::Sum, weighted, axes, false, sp()).unwrap();
    let inputs: Vec<Value> = g.inputs.iter().map(|i| input_value(&i.ty, &env, &mut rng)).collect();
    let wrt: Vec<usize> = (0..values.len()).collect();
    let opts = GradCheckOptions { seed, step: 1, ..GradCheckOptions::default() };
    let report = check_gradients(&g, loss, &inputs, &values, &wrt, &opts)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    assert!(report.passed(), "{}:\n{report}", c.name);
}

/// One op per variant of `Op`, and of the op enums inside it.
fn all_ops() -> Vec<Op> {
    use BinaryOp as B;
    use UnaryOp as U;
    let unary = [U::Neg, U::Exp, U::Log, U::Sqrt, U::Abs, U::Sign, U::Tanh, U::Sigmoid, U::Not];
    let binary = [
        B::Add,
        B::Sub,
        B::Mul,
        B::Div,
        B::Pow,
        B::Max,
        B::Min,
        B::Eq,
        B::Lt,
        B::Le,
        B::Gt,
        B::Ge,
        B::And,
        B::Or,
    ];
    // These matches fail to compile when a variant is added: add it to the lists above.
    for u in unary {
        match u {
            U::Neg | U::Exp | U::Log | U::Sqrt | U::Abs | U::Sign | U::Tanh | U::Sigmoid | U::Not => {}
        }
    }
    for b in binary {
        match b {
            B::Add | B::Sub | B::Mul | B::Div | B::Pow | B::Max | B::Min => {}
            B::Eq | B::Lt | B::Le | B::Gt | B::Ge | B::And | B::Or => {}
        }
    }
    let mut ops = vec![
        Op::Input { index: 0 },
        Op::Param { index: 0 },
        Op::Fill { value: 0.0 },
        Op::Random { dist: Distribution::Uniform, stream: 0 },
        Op::Random { dist: Distribution::Normal, stream: 0 },
        Op::Select,
        Op::Cast { to: DType::F64 },
        Op::Reduce { op: ReduceOp::Sum, axes: vec![], keep: false },
        Op::Reduce { op: ReduceOp::Max, axes: vec![], keep: false },
        Op::ArgMax { axis: 0 },
        Op::SizeOf { axes: vec![] },
        Op::Reshape,
        Op::Transpose { perm: vec![] },
        Op::Broadcast,
        Op::MatMul,
        Op::OneHot { depth: 1 },
        Op::Conv2D { stride: [1, 1], padding: Padding::Valid, dilation: [1, 1] },
        Op::Conv2DBackpropInput { stride: [1, 1], padding: Padding::Valid, dilation: [1, 1] },
        Op::Conv2DBackpropFilter { stride: [1, 1], padding: Padding::Valid, dilation: [1, 1] },
        Op::Pool2D { kind: PoolKind::Max, window: [2, 2], stride: [2, 2], padding: Padding::Valid },
        Op::Pool2D { kind: PoolKind::Avg, window: [2, 2], stride: [2, 2], padding: Padding::Valid },
        Op::Pool2DGrad { kind: PoolKind::Avg, window: [2, 2], stride: [2, 2], padding: Padding::Valid },
        Op::Gather,
        Op::ScatterAdd,
        Op::Slice { start: 0, len: 1 },
        Op::Pad { starts: vec![0], total: 1 },
        Op::Scan {
            body: Box::new(seq_bodies::rnn_body()),
            carries: 1,
            sequences: 1,
            reverse: false,
            output: ScanOutput::Final(0),
        },
    ];
    ops.extend(unary.map(Op::Unary));
    ops.extend(binary.map(Op::Binary));
    ops
}

fn un(op: UnaryOp) -> impl Fn(&mut Graph, &[NodeId]) -> Result<NodeId, ShapeError> {
    move |g, p| g.unary(op, p[0], sp())
}

fn bin(op: BinaryOp) -> impl Fn(&mut Graph, &[NodeId]) -> Result<NodeId, ShapeError> {
    move |g, p| g.binary(op, p[0], p[1], sp())
}

/// `cast(cmp(a, b)) · a`: the comparison passes no gradient, so d/da is the mask.
fn masked(op: BinaryOp) -> impl Fn(&mut Graph, &[NodeId]) -> Result<NodeId, ShapeError> {
    move |g, p| {
        let m = g.binary(op, p[0], p[1], sp())?;
        let m = g.cast(m, DType::F32, sp())?;
        g.binary(BinaryOp::Mul, m, p[0], sp())
    }
}

/// The gradient-check cases of `op`; every variant must have at least one.
fn cases_for(op: &Op) -> Vec<Case> {
    use Gen::*;
    let name = op.name();
    match op {
        Op::Input { .. } => vec![case(name, vec![P("3, 4", &[3, 4], Any)], |g, p| {
            let c = g.add_input("c", f32t("3, 4"), sp());
            g.binary(BinaryOp::Mul, p[0], c, sp())
        })],
        Op::Param { .. } => vec![case(name, vec![P("3, 4", &[3, 4], Any)], |_, p| Ok(p[0]))],
        Op::Fill { .. } => vec![case(name, vec![P("3, 4", &[3, 4], Any)], |g, p| {
            let half = g.fill(0.5, DType::F32, shape("3, 4"), sp());
            let two = g.scalar(2.0, DType::F32, sp());
            let t = g.binary(BinaryOp::Mul, p[0], two, sp())?;
            g.binary(BinaryOp::Add, t, half, sp())
        })],
        Op::Random { dist, .. } => {
            let dist = *dist;
            vec![case(name, vec![P("B, 4", &[3, 4], Any)], move |g, p| {
                let r = g.add(Op::Random { dist, stream: 7 }, &[], Some(f32t("B, 4")), sp())?;
                g.binary(BinaryOp::Mul, p[0], r, sp())
            })]
        }
        Op::Unary(u) => {
            let values_from = match u {
                UnaryOp::Log | UnaryOp::Sqrt => Positive,
                UnaryOp::Abs | UnaryOp::Sign => AwayFromZero,
                _ => Any,
            };
            match u {
                UnaryOp::Sign => vec![case(name, vec![P("3, 4", &[3, 4], values_from)], |g, p| {
                    let s = g.unary(UnaryOp::Sign, p[0], sp())?;
                    g.binary(BinaryOp::Mul, s, p[0], sp())
                })],
                UnaryOp::Not => vec![case(name, vec![P("3, 4", &[3, 4], Lattice(0.1))], |g, p| {
                    let zero = g.scalar(0.0, DType::F32, sp());
                    let pos = g.binary(BinaryOp::Gt, p[0], zero, sp())?;
                    let m = g.unary(UnaryOp::Not, pos, sp())?;
                    let m = g.cast(m, DType::F32, sp())?;
                    g.binary(BinaryOp::Mul, m, p[0], sp())
                })],
                _ => vec![case(name, vec![P("2, 3", &[2, 3], values_from)], un(*u))],
            }
        }
        Op::Binary(b) => binary_cases(*b),
        Op::Select => vec![
            case(name, vec![P("3, 4", &[3, 4], Lattice(0.0)), P("4", &[4], Lattice(0.1))], |g, p| {
                let c = g.binary(BinaryOp::Gt, p[0], p[1], sp())?;
                g.select(c, p[0], p[1], sp())
            }),
            case("select with a scalar", vec![P("B, 3", &[2, 3], Lattice(0.1))], |g, p| {
                let zero = g.scalar(0.0, DType::F32, sp());
                let c = g.binary(BinaryOp::Lt, p[0], zero, sp())?;
                let sq = g.binary(BinaryOp::Mul, p[0], p[0], sp())?;
                g.select(c, zero, sq, sp())
            }),
        ],
        Op::Cast { .. } => vec![
            case("cast f32 to f64", vec![P("2, 3", &[2, 3], Any)], |g, p| g.cast(p[0], DType::F64, sp())),
            case("cast through i64", vec![P("2, 3", &[2, 3], Lattice(0.1))], |g, p| {
                let i = g.cast(p[0], DType::I64, sp())?;
                let f = g.cast(i, DType::F32, sp())?;
                g.binary(BinaryOp::Mul, f, p[0], sp())
            }),
        ],
        Op::Reduce { op: r, .. } => {
            let (r, values_from) = (*r, if *r == ReduceOp::Max { Distinct } else { Any });
            vec![
                case(name, vec![P("2, 3, 4", &[2, 3, 4], values_from)], move |g, p| {
                    g.reduce(r, p[0], vec![1], false, sp())
                }),
                case(name, vec![P("2, 3, 4", &[2, 3, 4], values_from)], move |g, p| {
                    g.reduce(r, p[0], vec![0, 2], true, sp())
                }),
                case(name, vec![P("B, 3", &[2, 3], values_from)], move |g, p| {
                    g.reduce(r, p[0], vec![0, 1], false, sp())
                }),
            ]
        }
        Op::ArgMax { .. } => vec![case(name, vec![P("3, 4", &[3, 4], Distinct)], |g, p| {
            let a = g.add(Op::ArgMax { axis: 1 }, &[p[0]], None, sp())?;
            let a = g.cast(a, DType::F32, sp())?;
            let s = g.reduce(ReduceOp::Sum, p[0], vec![1], false, sp())?;
            g.binary(BinaryOp::Mul, a, s, sp())
        })],
        Op::SizeOf { .. } => vec![case(name, vec![P("B, 4", &[3, 4], Any)], |g, p| {
            let n = g.add(Op::SizeOf { axes: vec![0] }, &[p[0]], Some(f32t("")), sp())?;
            g.binary(BinaryOp::Mul, n, p[0], sp())
        })],
        Op::Reshape => vec![
            case(name, vec![P("3, 4", &[3, 4], Any)], |g, p| g.reshape(p[0], &shape("2, 6"), sp())),
            case(name, vec![P("B, 4", &[3, 4], Any)], |g, p| g.reshape(p[0], &shape("B, 2, 2"), sp())),
        ],
        Op::Transpose { .. } => {
            vec![case(name, vec![P("2, 3, 4", &[2, 3, 4], Any)], |g, p| {
                g.transpose(p[0], vec![2, 0, 1], sp())
            })]
        }
        Op::Broadcast => vec![
            case(name, vec![P("3, 1", &[3, 1], Any)], |g, p| g.broadcast_to(p[0], &shape("2, 3, 4"), sp())),
            case(name, vec![P("B, 1", &[3, 1], Any)], |g, p| g.broadcast_to(p[0], &shape("B, 4"), sp())),
        ],
        Op::MatMul => vec![
            case(name, vec![P("3, 4", &[3, 4], Any), P("4, 5", &[4, 5], Any)], bin_matmul),
            case(name, vec![P("2, 3, 4", &[2, 3, 4], Any), P("4, 5", &[4, 5], Any)], bin_matmul),
            case(name, vec![P("2, 1, 3, 4", &[2, 1, 3, 4], Any), P("3, 4, 2", &[3, 4, 2], Any)], bin_matmul),
            case(name, vec![P("B, 2, 3", &[2, 2, 3], Any), P("B, 3, 2", &[2, 3, 2], Any)], bin_matmul),
        ],
        Op::OneHot { .. } => vec![case(name, vec![P("3, 4", &[3, 4], Any)], |g, p| {
            let labels = g.add_input("labels", TensorType::new(DType::I64, shape("3")), sp());
            let oh = g.add(Op::OneHot { depth: 4 }, &[labels], Some(f32t("3, 4")), sp())?;
            g.binary(BinaryOp::Mul, oh, p[0], sp())
        })],
        Op::Conv2D { .. }
        | Op::Conv2DBackpropInput { .. }
        | Op::Conv2DBackpropFilter { .. }
        | Op::Pool2D { .. }
        | Op::Pool2DGrad { .. } => conv_cases(op),
        Op::Gather | Op::ScatterAdd | Op::Slice { .. } | Op::Pad { .. } | Op::Scan { .. } => {
            sequence_cases(op)
        }
    }
}

/// Embedding lookups and scans. Ids are inputs with values in 0..4 (see `input_value`).
fn sequence_cases(op: &Op) -> Vec<Case> {
    use Gen::*;
    use seq_bodies as sb;
    let name = op.name();
    match op {
        Op::Gather => vec![case(name, vec![P("4, 3", &[4, 3], Any)], |g, p| {
            let ids = g.add_input("ids", sb::i64t("2, 5"), sp());
            g.add(Op::Gather, &[p[0], ids], None, sp())
        })],
        Op::ScatterAdd => vec![case(name, vec![P("B, 5, 3", &[2, 5, 3], Any)], |g, p| {
            let ids = g.add_input("ids", sb::i64t("B, 5"), sp());
            g.add(Op::ScatterAdd, &[ids, p[0]], Some(f32t("4, 3")), sp())
        })],
        Op::Slice { .. } => vec![
            case(name, vec![P("B, 3, 8", &[2, 3, 8], Any)], |g, p| {
                g.add(Op::Slice { start: 2, len: 5 }, &[p[0]], None, sp())
            }),
            // Two overlapping slices of one tensor: their pads are summed, not merged.
            case("slices that overlap", vec![P("4, 6", &[4, 6], Any)], |g, p| {
                let a = g.add(Op::Slice { start: 0, len: 4 }, &[p[0]], None, sp())?;
                let b = g.add(Op::Slice { start: 2, len: 4 }, &[p[0]], None, sp())?;
                let t = g.unary(UnaryOp::Tanh, b, sp())?;
                g.binary(BinaryOp::Mul, a, t, sp())
            }),
        ],
        Op::Pad { .. } => vec![
            case(name, vec![P("B, 3", &[2, 3], Any)], |g, p| {
                g.add(Op::Pad { starts: vec![4], total: 8 }, &[p[0]], None, sp())
            }),
            case("pad of two operands", vec![P("3, 2", &[3, 2], Any), P("3, 3", &[3, 3], Any)], |g, p| {
                g.add(Op::Pad { starts: vec![5, 1], total: 8 }, &[p[0], p[1]], None, sp())
            }),
        ],
        _ => {
            let rnn = || {
                vec![
                    P("B, 3", &[2, 3], Any),
                    P("B, T, 2", &[2, 4, 2], Any),
                    P("2, 3", &[2, 3], Any),
                    P("3, 3", &[3, 3], Any),
                    P("3", &[3], Any),
                ]
            };
            let two = || {
                vec![
                    P("B, 3", &[2, 3], Any),
                    P("B, 3", &[2, 3], Any),
                    P("B, T, 2", &[2, 3, 2], Any),
                    P("2, 3", &[2, 3], Any),
                    P("3, 3", &[3, 3], Any),
                ]
            };
            vec![
                case("scan stacked per-step output", rnn(), |g, p| {
                    sb::scan(g, sb::rnn_body(), 1, 1, false, ScanOutput::Stacked(1), p)
                }),
                case("scan final carry", rnn(), |g, p| {
                    sb::scan(g, sb::rnn_body(), 1, 1, false, ScanOutput::Final(0), p)
                }),
                case("scan reversed, stacked carries", rnn(), |g, p| {
                    sb::scan(g, sb::rnn_body(), 1, 1, true, ScanOutput::Stacked(0), p)
                }),
                case("scan with two carries, stacked", two(), |g, p| {
                    sb::scan(g, sb::two_carry_body(), 2, 1, false, ScanOutput::Stacked(2), p)
                }),
                case("scan with two carries, both final", two(), |g, p| {
                    let h = sb::scan(g, sb::two_carry_body(), 2, 1, false, ScanOutput::Final(0), p)?;
                    let c = sb::scan(g, sb::two_carry_body(), 2, 1, false, ScanOutput::Final(1), p)?;
                    g.binary(BinaryOp::Mul, h, c, sp())
                }),
                case(
                    "scan over embedded ids",
                    vec![P("B, 3", &[2, 3], Any), P("5, 3", &[5, 3], Any), P("3, 3", &[3, 3], Any)],
                    |g, p| {
                        let ids = g.add_input("ids", sb::i64t("B, 4"), sp());
                        sb::scan(
                            g,
                            sb::embedding_body(),
                            1,
                            1,
                            false,
                            ScanOutput::Stacked(0),
                            &[p[0], ids, p[1], p[2]],
                        )
                    },
                ),
            ]
        }
    }
}

/// Convolution attributes with a stride of (2, 1), `same` padding and a dilated width.
fn conv_op(make: fn([usize; 2], Padding, [usize; 2]) -> Op) -> Op {
    make([2, 1], Padding::Same, [1, 2])
}

fn conv_cases(op: &Op) -> Vec<Case> {
    use Gen::*;
    let name = op.name();
    match op {
        Op::Conv2D { .. } => vec![
            case(
                name,
                vec![P("B, 5, 4, 2", &[2, 5, 4, 2], Any), P("3, 2, 2, 3", &[3, 2, 2, 3], Any)],
                |g, p| {
                    let op = conv_op(|stride, padding, dilation| Op::Conv2D { stride, padding, dilation });
                    g.add(op, &[p[0], p[1]], None, sp())
                },
            ),
            case(
                name,
                vec![P("1, 4, 5, 1", &[1, 4, 5, 1], Any), P("2, 3, 1, 2", &[2, 3, 1, 2], Any)],
                |g, p| {
                    let op = Op::Conv2D { stride: [1, 2], padding: Padding::Valid, dilation: [1, 1] };
                    g.add(op, &[p[0], p[1]], None, sp())
                },
            ),
        ],
        // The gradient's shape is that of conv2d([B, 5, 4, 2], [3, 2, 2, 3]): [B, 3, 4, 3].
        Op::Conv2DBackpropInput { .. } => vec![case(
            name,
            vec![P("B, 3, 4, 3", &[2, 3, 4, 3], Any), P("3, 2, 2, 3", &[3, 2, 2, 3], Any)],
            |g, p| {
                let op = conv_op(|stride, padding, dilation| Op::Conv2DBackpropInput {
                    stride,
                    padding,
                    dilation,
                });
                g.add(op, &[p[0], p[1]], Some(f32t("B, 5, 4, 2")), sp())
            },
        )],
        Op::Conv2DBackpropFilter { .. } => vec![case(
            name,
            vec![P("B, 5, 4, 2", &[2, 5, 4, 2], Any), P("B, 3, 4, 3", &[2, 3, 4, 3], Any)],
            |g, p| {
                let op = conv_op(|stride, padding, dilation| Op::Conv2DBackpropFilter {
                    stride,
                    padding,
                    dilation,
                });
                g.add(op, &[p[0], p[1]], Some(f32t("3, 2, 2, 3")), sp())
            },
        )],
        Op::Pool2D { kind, .. } => {
            let (kind, values_from) = (*kind, if *kind == PoolKind::Max { Distinct } else { Any });
            vec![
                case(name, vec![P("B, 4, 5, 2", &[2, 4, 5, 2], values_from)], move |g, p| {
                    let op = Op::Pool2D { kind, window: [2, 2], stride: [2, 2], padding: Padding::Valid };
                    g.add(op, &[p[0]], None, sp())
                }),
                case(name, vec![P("1, 5, 5, 3", &[1, 5, 5, 3], values_from)], move |g, p| {
                    let op = Op::Pool2D { kind, window: [3, 2], stride: [2, 1], padding: Padding::Same };
                    g.add(op, &[p[0]], None, sp())
                }),
            ]
        }
        // Linear in g; constant in x, whose gradient is zero.
        Op::Pool2DGrad { kind, .. } => {
            let kind = *kind;
            vec![case(
                name,
                vec![P("B, 5, 5, 2", &[2, 5, 5, 2], Distinct), P("B, 3, 3, 2", &[2, 3, 3, 2], Any)],
                move |g, p| {
                    let op = Op::Pool2DGrad { kind, window: [2, 3], stride: [2, 2], padding: Padding::Same };
                    g.add(op, &[p[0], p[1]], None, sp())
                },
            )]
        }
        _ => Vec::new(),
    }
}

fn bin_matmul(g: &mut Graph, p: &[NodeId]) -> Result<NodeId, ShapeError> {
    g.matmul(p[0], p[1], sp())
}

fn binary_cases(b: BinaryOp) -> Vec<Case> {
    use Gen::*;
    let name = Op::Binary(b).name();
    let (ga, gb) = match b {
        BinaryOp::Div => (Any, AwayFromZero),
        BinaryOp::Pow => (Positive, Any),
        BinaryOp::Max | BinaryOp::Min | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            (Lattice(0.0), Lattice(0.1))
        }
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Eq | BinaryOp::And | BinaryOp::Or => {
            (Any, Any)
        }
    };
    let shapes: [(&'static str, &'static [usize], &'static str, &'static [usize]); 4] = [
        ("3, 4", &[3, 4], "3, 4", &[3, 4]),
        ("B, 1", &[3, 1], "1, 4", &[1, 4]),
        ("4", &[4], "B, 4", &[2, 4]),
        ("", &[], "2, 3", &[2, 3]),
    ];
    let pairs = || shapes.iter().map(move |&(da, ca, db, cb)| vec![P(da, ca, ga), P(db, cb, gb)]);
    match b {
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            pairs().map(|p| case(name, p, masked(b))).collect()
        }
        // eq(a, a) is true everywhere and stays so when a moves.
        BinaryOp::Eq => vec![case(name, vec![P("3, 4", &[3, 4], Any), P("4", &[4], Any)], |g, p| {
            let m = g.binary(BinaryOp::Eq, p[0], p[0], sp())?;
            let m = g.cast(m, DType::F32, sp())?;
            g.binary(BinaryOp::Mul, m, p[1], sp())
        })],
        BinaryOp::And | BinaryOp::Or => vec![case(
            name,
            vec![P("3, 4", &[3, 4], Lattice(0.1)), P("4", &[4], Lattice(0.1))],
            move |g, p| {
                let zero = g.scalar(0.0, DType::F32, sp());
                let (x, y) =
                    (g.binary(BinaryOp::Gt, p[0], zero, sp())?, g.binary(BinaryOp::Gt, p[1], zero, sp())?);
                let m = g.binary(b, x, y, sp())?;
                let m = g.cast(m, DType::F32, sp())?;
                g.binary(BinaryOp::Mul, m, p[0], sp())
            },
        )],
        _ => pairs().map(|p| case(name, p, bin(b))).collect(),
    }
}

/// Which file of `src/ops` an op belongs to.
fn family(op: &Op) -> &'static str {
    match op {
        Op::Input { .. } | Op::Param { .. } | Op::Fill { .. } | Op::Random { .. } => "leaf",
        Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast { .. } => "elementwise",
        Op::Reduce { .. } | Op::ArgMax { .. } | Op::SizeOf { .. } => "reduce",
        Op::Reshape | Op::Transpose { .. } | Op::Broadcast | Op::OneHot { .. } => "layout",
        Op::Slice { .. } | Op::Pad { .. } => "slice",
        Op::MatMul => "linalg",
        Op::Conv2D { .. } | Op::Conv2DBackpropInput { .. } | Op::Conv2DBackpropFilter { .. } => "conv",
        Op::Pool2D { .. } | Op::Pool2DGrad { .. } => "pool",
        Op::Gather | Op::ScatterAdd => "gather",
        Op::Scan { .. } => "scan",
    }
}

fn check_family(f: &str) {
    let ops: Vec<Op> = all_ops().into_iter().filter(|op| family(op) == f).collect();
    assert!(!ops.is_empty());
    for (i, op) in ops.iter().enumerate() {
        let cases = cases_for(op);
        assert!(!cases.is_empty(), "no gradient-check case for `{}`", op.name());
        for (k, c) in cases.iter().enumerate() {
            run_case(c, (i * 16 + k) as u64);
        }
    }
}

#[test]
fn every_op_variant_is_listed_once() {
    let names: Vec<String> = all_ops().iter().map(|op| op.to_string()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert_eq!(names.len(), 21 + 9 + 14 + 6);
}

#[test]
fn leaves_pass_gradient_checks() {
    check_family("leaf");
}

#[test]
fn elementwise_ops_pass_gradient_checks() {
    check_family("elementwise");
}

#[test]
fn reductions_pass_gradient_checks() {
    check_family("reduce");
}

#[test]
fn layout_ops_pass_gradient_checks() {
    check_family("layout");
}

#[test]
fn slices_and_pads_pass_gradient_checks() {
    check_family("slice");
}

#[test]
fn matmul_passes_gradient_checks() {
    check_family("linalg");
}

#[test]
fn convolutions_pass_gradient_checks() {
    check_family("conv");
}

#[test]
fn poolings_pass_gradient_checks() {
    check_family("pool");
}

#[test]
fn lookups_pass_gradient_checks() {
    check_family("gather");
}

#[test]
fn scans_pass_gradient_checks() {
    check_family("scan");
}

/// The registry's rules, except a wrong derivative of tanh: g·y instead of g·(1 − y²).
struct WrongTanh;

impl VjpRules for WrongTanh {
    fn vjp(&self, g: &mut Graph, node: NodeId, grad_out: NodeId) -> Result<Vec<Option<NodeId>>, ShapeError> {
        if g.node(node).op == Op::Unary(UnaryOp::Tanh) {
            return Ok(vec![Some(g.binary(BinaryOp::Mul, grad_out, node, sp())?)]);
        }
        ops::vjp(g, node, grad_out)
    }
}

#[test]
fn a_wrong_rule_is_rejected() {
    let mut g = Graph::new("wrong");
    let info =
        ParamInfo { name: "x".into(), ty: f32t("2, 3"), init: Init::Zeros, trainable: true, span: sp() };
    let x = g.add_param(info);
    let t = g.unary(UnaryOp::Tanh, x, sp()).unwrap();
    let loss = g.reduce(ReduceOp::Sum, t, vec![0, 1], false, sp()).unwrap();
    let xv =
        Value::F64(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![-1.0, -0.5, 0.1, 0.3, 0.7, 1.2]).unwrap());
    let opts = GradCheckOptions::default();
    let args = (&g, loss, &[] as &[Value], std::slice::from_ref(&xv), &[0usize] as &[usize], &opts);
    let good = check_gradients(args.0, args.1, args.2, args.3, args.4, args.5).unwrap();
    assert!(good.passed(), "{good}");
    let bad = check_gradients_with(args.0, args.1, args.2, args.3, args.4, args.5, &WrongTanh).unwrap();
    assert!(!bad.passed(), "the checker accepted d tanh = g·y:\n{bad}");
    assert!(bad.params[0].max_error > 0.1);
}
