//! Strided accumulation, the native form of the reductions and broadcasts the fused
//! kernels cannot express (a sum over middle axes, a broadcast into them): over a domain
//! of `dims`, `out[Σ i_a·out_strides_a] += x[Σ i_a·x_strides_a]`, `out` zeroed first.
//!
//! A sum keeps a zero output stride on its reduced axes; a broadcast a zero input stride on
//! its repeated axes (each output element then receives exactly one value). The domain is
//! walked in row-major order, the last axis innermost, with both offsets kept by an
//! odometer: nothing is allocated. Ranks up to `MAX_RANK`.

/// The largest rank handled (the odometer lives on the stack).
pub(crate) const MAX_RANK: usize = 8;

/// A strided accumulation of one planned op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accumulation {
    pub dims: Vec<usize>,
    pub x_strides: Vec<usize>,
    pub out_strides: Vec<usize>,
}

impl Accumulation {
    /// `sum(x, axes)` of an `x` of shape `shape` (the kept axes in order; `keep` makes
    /// no difference to the layout).
    pub fn sum(shape: &[usize], axes: &[usize]) -> Option<Accumulation> {
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
        let mut out_strides = vec![0; shape.len()];
        let mut stride = 1;
        for &a in kept.iter().rev() {
            out_strides[a] = stride;
            stride *= shape[a];
        }
        Accumulation::new(shape.to_vec(), row_major(shape), out_strides)
    }

    /// NumPy broadcast of an `x` of shape `from` to `to`.
    pub fn broadcast(from: &[usize], to: &[usize]) -> Option<Accumulation> {
        let lead = to.len().checked_sub(from.len())?;
        let x_row = row_major(from);
        let mut x_strides = vec![0; to.len()];
        for (a, (&d, &s)) in from.iter().zip(&x_row).enumerate() {
            if d == to[lead + a] {
                x_strides[lead + a] = s;
            } else if d != 1 {
                return None;
            }
        }
        Accumulation::new(to.to_vec(), x_strides, row_major(to))
    }

    fn new(dims: Vec<usize>, x_strides: Vec<usize>, out_strides: Vec<usize>) -> Option<Accumulation> {
        (dims.len() <= MAX_RANK).then_some(Accumulation { dims, x_strides, out_strides })
    }

    /// One past the largest offset read from `x` and written to `out`.
    pub fn spans(&self) -> (usize, usize) {
        let span = |strides: &[usize]| {
            if self.dims.contains(&0) {
                return 0;
            }
            1 + self.dims.iter().zip(strides).map(|(d, s)| (d - 1) * s).sum::<usize>()
        };
        (span(&self.x_strides), span(&self.out_strides))
    }

    /// Runs it. Panics (a planning bug) if a slice is shorter than `spans()`.
    pub fn run(&self, x: &[f32], out: &mut [f32]) {
        let (x_span, out_span) = self.spans();
        let (x, out) = (&x[..x_span], &mut out[..out_span]);
        out.fill(0.0);
        let rank = self.dims.len();
        if rank == 0 || x_span == 0 {
            if let (Some(o), Some(&v)) = (out.first_mut(), x.first()) {
                *o += v;
            }
            return;
        }
        let (inner, xs, os) = (self.dims[rank - 1], self.x_strides[rank - 1], self.out_strides[rank - 1]);
        let mut index = [0usize; MAX_RANK];
        let (mut xo, mut oo) = (0usize, 0usize);
        loop {
            for j in 0..inner {
                out[oo + j * os] += x[xo + j * xs];
            }
            // Advance the odometer over the outer axes.
            let mut a = rank - 1;
            loop {
                if a == 0 {
                    return;
                }
                a -= 1;
                index[a] += 1;
                xo += self.x_strides[a];
                oo += self.out_strides[a];
                if index[a] < self.dims[a] {
                    break;
                }
                xo -= self.x_strides[a] * self.dims[a];
                oo -= self.out_strides[a] * self.dims[a];
                index[a] = 0;
            }
        }
    }
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut s = 1;
    for a in (0..shape.len()).rev() {
        strides[a] = s;
        s *= shape[a];
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Op, ReduceOp};
    use crate::ops::{self, EvalCtx, Value};
    use ndarray::{ArrayD, IxDyn};

    fn reference(op: &Op, x: &[f32], shape: &[usize], out_shape: &[usize]) -> Vec<f32> {
        let v = Value::F32(ArrayD::from_shape_vec(IxDyn(shape), x.to_vec()).unwrap());
        let ctx =
            EvalCtx { dtype: crate::shape::DType::F32, shape: Some(out_shape.to_vec()), seed: 0, step: 0 };
        match ops::eval(op, &[&v], &ctx).unwrap() {
            Value::F32(a) => a.iter().copied().collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sums_over_any_axes_match_the_reference_kernel() {
        let shape = [2usize, 3, 4, 5];
        let x: Vec<f32> = (0..120).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        for axes in [vec![1, 2], vec![0], vec![3], vec![0, 3], vec![1], vec![0, 1, 2, 3]] {
            let out_shape: Vec<usize> = (0..4).filter(|a| !axes.contains(a)).map(|a| shape[a]).collect();
            let want = reference(
                &Op::Reduce { op: ReduceOp::Sum, axes: axes.clone(), keep: false },
                &x,
                &shape,
                &out_shape,
            );
            let acc = Accumulation::sum(&shape, &axes).unwrap();
            let mut got = vec![f32::NAN; want.len().max(1)];
            acc.run(&x, &mut got);
            assert_eq!(&got[..want.len()], &want[..], "axes {axes:?}");
        }
    }

    #[test]
    fn broadcasts_match_the_reference_kernel() {
        for (from, to) in [
            (vec![2usize, 1, 1, 5], vec![2usize, 3, 4, 5]),
            (vec![5], vec![2, 3, 5]),
            (vec![3, 1], vec![2, 3, 4]),
            (vec![1], vec![4]),
        ] {
            let x: Vec<f32> = (0..from.iter().product::<usize>()).map(|i| i as f32 + 0.5).collect();
            let want = reference(&Op::Broadcast, &x, &from, &to);
            let acc = Accumulation::broadcast(&from, &to).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            acc.run(&x, &mut got);
            assert_eq!(got, want, "{from:?} -> {to:?}");
        }
        assert!(Accumulation::broadcast(&[2, 3], &[2, 4]).is_none(), "incompatible shapes");
    }
}
