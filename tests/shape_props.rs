//! Property tests of shape checking. Broadcasting (`dnnc::shape::broadcast_shapes`) is
//! commutative, agrees with a direct implementation of NumPy's rule on concrete shapes,
//! and lets a symbol match only itself or 1. Shape inference: random small programs of
//! elementwise ops, matmul, sum and reshape, whose result shapes the test computes on its
//! own, must get exactly those types in the typed IR, and a final ill-shaped step must be
//! reported with the expected code.

use dnnc::shape::{Dim, broadcast_shapes};
use proptest::prelude::*;

fn dim() -> impl Strategy<Value = Dim> {
    prop_oneof![
        3 => (1i64..5).prop_map(Dim::Const),
        1 => prop_oneof![Just(Dim::sym("B")), Just(Dim::sym("T"))],
    ]
}

fn shape() -> impl Strategy<Value = Vec<Dim>> {
    prop::collection::vec(dim(), 0..5)
}

/// NumPy's rule, written out for concrete sizes: pad with leading 1s, then each axis
/// takes the size that is not 1, and two sizes that are not 1 must be equal.
fn numpy_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect()
    };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| match (x, y) {
            (1, y) => Some(y),
            (x, 1) => Some(x),
            (x, y) if x == y => Some(x),
            _ => None,
        })
        .collect()
}

proptest! {
    #[test]
    fn broadcasting_is_commutative(a in shape(), b in shape()) {
        prop_assert_eq!(broadcast_shapes(&a, &b).ok(), broadcast_shapes(&b, &a).ok());
    }

    #[test]
    fn broadcasting_agrees_with_numpy_on_concrete_shapes(
        a in prop::collection::vec(1usize..4, 0..5),
        b in prop::collection::vec(1usize..4, 0..5),
    ) {
        let dims = |s: &[usize]| -> Vec<Dim> { s.iter().map(|&n| Dim::Const(n as i64)).collect() };
        let got = broadcast_shapes(&dims(&a), &dims(&b)).ok();
        prop_assert_eq!(got, numpy_broadcast(&a, &b).map(|s| dims(&s)));
    }

    #[test]
    fn a_symbol_matches_only_itself_or_one(other in dim(), lead in shape()) {
        let mut a = lead.clone();
        a.push(Dim::sym("B"));
        let b = vec![other.clone()];
        let result = broadcast_shapes(&a, &b);
        if other == Dim::sym("B") || other == Dim::Const(1) {
            let out = result.expect("B against B or 1 broadcasts");
            prop_assert_eq!(out.last(), Some(&Dim::sym("B")));
        } else {
            let err = result.expect_err("B against another size or symbol is an error");
            prop_assert_eq!(err.axis_from_end, 1);
        }
    }
}

/// One step of a generated program, with the shape it yields computed by the test.
#[derive(Clone, Debug)]
enum Step {
    /// `x <op> ones(shape)`.
    Elementwise(&'static str, Vec<i64>),
    Matmul(i64),
    Sum(usize, bool),
    Flatten,
    Unary(&'static str),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (prop::sample::select(vec!["+", "-", "*", "/"]), prop::collection::vec(1i64..4, 0..3))
            .prop_map(|(op, s)| Step::Elementwise(op, s)),
        (1i64..5).prop_map(Step::Matmul),
        (1usize..4, any::<bool>()).prop_map(|(a, k)| Step::Sum(a, k)),
        Just(Step::Flatten),
        prop::sample::select(vec!["exp", "tanh", "relu"]).prop_map(Step::Unary),
    ]
}

/// The shape after a step (`B` stays symbolic as axis 0), or the code of the error it
/// must raise. Written from the ops' definitions, not from the compiler's rules.
fn apply(shape: &[i64], s: &Step) -> Result<Vec<i64>, &'static str> {
    let rank = shape.len() + 1; // with the batch axis
    match s {
        Step::Elementwise(_, other) => {
            // Right-aligned against the axes after the batch (`program` keeps it shorter).
            assert!(other.len() < rank, "the operand would reach the batch axis");
            let mut out = shape.to_vec();
            let offset = shape.len() - other.len();
            for (i, &d) in other.iter().enumerate() {
                let cur = shape[offset + i];
                out[offset + i] = match (cur, d) {
                    (c, 1) => c,
                    (1, d) => d,
                    (c, d) if c == d => c,
                    _ => return Err("E0201"),
                };
            }
            Ok(out)
        }
        Step::Matmul(n) => {
            // A rank-1 left operand (just `[B]`) has no matrix axes.
            if shape.is_empty() {
                return Err("E0202");
            }
            let mut out = shape.to_vec();
            *out.last_mut().expect("non-empty") = *n;
            Ok(out)
        }
        Step::Sum(axis, keep) => {
            if *axis >= rank {
                return Err("E0206");
            }
            let mut out = shape.to_vec();
            if *keep {
                out[axis - 1] = 1
            } else {
                out.remove(axis - 1);
            }
            Ok(out)
        }
        Step::Flatten => Ok(vec![shape.iter().product()]),
        Step::Unary(_) => Ok(shape.to_vec()),
    }
}

fn step_text(s: &Step, shape: &[i64]) -> String {
    let list = |v: &[i64]| v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    match s {
        Step::Elementwise(op, other) => format!("h {op} ones([{}])", list(other)),
        Step::Matmul(n) => format!("h @ ones([{}, {n}])", shape.last().copied().unwrap_or(1)),
        Step::Sum(axis, keep) => format!("sum(h, axis: {axis}, keep: {keep})"),
        Step::Flatten => "reshape(h, [B, -1])".into(),
        Step::Unary(f) => format!("{f}(h)"),
    }
}

fn type_text(shape: &[i64]) -> String {
    let mut dims = vec!["B".to_string()];
    dims.extend(shape.iter().map(|d| d.to_string()));
    format!("f32[{}]", dims.join(", "))
}

/// Builds the program `let h = step(h)` per step; returns its text and the expected type
/// or error code.
fn program(input: &[i64], steps: &[Step]) -> (String, Result<String, &'static str>) {
    let mut text = format!("model P(x: {}) {{\n    let h = x\n", type_text(input));
    let mut shape = input.to_vec();
    let mut expected = Ok(());
    for s in steps {
        // Keep the batch axis first: an elementwise operand never reaches it.
        let s = &match s {
            Step::Elementwise(op, other) if other.len() > shape.len() => {
                Step::Elementwise(op, other[other.len() - shape.len()..].to_vec())
            }
            other => other.clone(),
        };
        text.push_str(&format!("    let h = {}\n", step_text(s, &shape)));
        match apply(&shape, s) {
            Ok(next) => shape = next,
            Err(code) => {
                expected = Err(code);
                break;
            }
        }
    }
    text.push_str("    h\n}\n");
    (text, expected.map(|()| type_text(&shape)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn inferred_types_match_an_independent_computation(
        input in prop::collection::vec(1i64..4, 1..3),
        steps in prop::collection::vec(step(), 1..6),
    ) {
        let (text, expected) = program(&input, &steps);
        let checked = dnnc::sema::check_source("prop.dnn", &text);
        match expected {
            Ok(ty) => {
                let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
                let p = checked.program.unwrap_or_else(|| panic!("{text}\n{rendered}"));
                let g = &p.models[0].graph;
                let out = g.output("output").expect("an output");
                prop_assert_eq!(g.ty(out).to_string(), ty, "{}", text);
            }
            Err(code) => {
                let codes: Vec<&str> = checked.diags.iter().map(|d| d.code.as_str()).collect();
                prop_assert_eq!(codes, vec![code], "{}", text);
            }
        }
    }

    #[test]
    fn an_inner_dimension_mismatch_is_reported(
        input in prop::collection::vec(1i64..4, 1..3),
        wrong in 1i64..3,
    ) {
        let last = *input.last().expect("non-empty");
        let text = format!(
            "model P(x: {}) = x @ ones([{}, 2])\n",
            type_text(&input),
            last + wrong
        );
        let checked = dnnc::sema::check_source("prop.dnn", &text);
        let codes: Vec<&str> = checked.diags.iter().map(|d| d.code.as_str()).collect();
        prop_assert_eq!(codes, vec!["E0202"]);
        let msg = &checked.diags[0].primary.message;
        prop_assert!(msg.contains(&type_text(&input)), "{}", msg);
    }

    #[test]
    fn a_reshape_that_changes_the_count_is_reported(
        input in prop::collection::vec(1i64..4, 1..4),
        extra in 1i64..3,
    ) {
        let count: i64 = input.iter().product();
        let text = format!("model P(x: {}) = reshape(x, [B, {}])\n", type_text(&input), count + extra);
        let checked = dnnc::sema::check_source("prop.dnn", &text);
        let codes: Vec<&str> = checked.diags.iter().map(|d| d.code.as_str()).collect();
        prop_assert_eq!(codes, vec!["E0204"]);
    }
}
