//! Sliding-window steps of a compiled step: convolutions and pooling run by the native
//! kernels of `kernels::conv` and `kernels::pool` instead of the reference fallback.
//!
//! [`WindowKernel::of`] recognizes an op with its concrete operand and result shapes;
//! the plan then reserves the kernel's scratch in the arena (live for that one
//! instruction) and the host calls [`WindowKernel::run`] on slices of exactly the lengths
//! reported here. Only f32 values take this path.

use super::specialize::{PlanOptions, gemm_threads};
use crate::fuse::StepKind;
use crate::ir::{Graph, Op, PoolKind};
use crate::kernels::conv::{self, ConvGeometry, ConvOp};
use crate::kernels::pool::{self, PoolGeometry};
use crate::shape::DType;

/// A native convolution or pooling kernel with its geometry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WindowKernel {
    Conv(ConvGeometry, ConvOp),
    /// Pooling; `true` for the gradient.
    Pool(PoolGeometry, bool),
}

impl WindowKernel {
    /// The kernel for `op` with these operand and result shapes, if it has one.
    pub fn of(op: &Op, operands: &[&[usize]], out: &[usize]) -> Option<WindowKernel> {
        let conv = |x: &[usize], k: &[usize], stride, padding, dilation, which| {
            ConvGeometry::new(x, k, stride, padding, dilation).ok().map(|g| WindowKernel::Conv(g, which))
        };
        match (op, operands) {
            (Op::Conv2D { stride, padding, dilation }, [x, k]) => {
                conv(x, k, *stride, *padding, *dilation, ConvOp::Forward)
            }
            (Op::Conv2DBackpropInput { stride, padding, dilation }, [_, k]) => {
                conv(out, k, *stride, *padding, *dilation, ConvOp::BackpropInput)
            }
            (Op::Conv2DBackpropFilter { stride, padding, dilation }, [x, _]) => {
                conv(x, out, *stride, *padding, *dilation, ConvOp::BackpropFilter)
            }
            (Op::Pool2D { kind, window, stride, padding }, [x]) => {
                PoolGeometry::new(*kind, x, *window, *stride, *padding)
                    .ok()
                    .map(|g| WindowKernel::Pool(g, false))
            }
            (Op::Pool2DGrad { kind, window, stride, padding }, [x, _]) => {
                PoolGeometry::new(*kind, x, *window, *stride, *padding)
                    .ok()
                    .map(|g| WindowKernel::Pool(g, true))
            }
            _ => None,
        }
    }

    /// The op's name, as the plan prints it.
    pub fn name(&self) -> &'static str {
        match self {
            WindowKernel::Conv(_, ConvOp::Forward) => "conv2d",
            WindowKernel::Conv(_, ConvOp::BackpropInput) => "conv2d_backprop_input",
            WindowKernel::Conv(_, ConvOp::BackpropFilter) => "conv2d_backprop_filter",
            WindowKernel::Pool(g, grad) => match (g.kind, grad) {
                (PoolKind::Max, false) => "max_pool2d",
                (PoolKind::Max, true) => "max_pool2d_grad",
                (PoolKind::Avg, false) => "avg_pool2d",
                (PoolKind::Avg, true) => "avg_pool2d_grad",
            },
        }
    }

    /// Multiply-adds (convolutions) or element visits (pooling), to decide on threads.
    pub fn work(&self) -> usize {
        match self {
            WindowKernel::Conv(g, _) => g.flops(),
            WindowKernel::Pool(g, _) => g.input_len(),
        }
    }

    /// Scratch elements the kernel needs with `threads` threads.
    pub fn scratch_len(&self, threads: usize) -> usize {
        match self {
            WindowKernel::Conv(g, op) => g.scratch_len(*op, threads),
            WindowKernel::Pool(..) => 0,
        }
    }

    /// Elements of the first operand, the second operand (0 when there is none) and the
    /// result.
    pub fn lens(&self) -> [usize; 3] {
        match self {
            WindowKernel::Conv(g, ConvOp::Forward) => [g.input_len(), g.kernel_len(), g.output_len()],
            WindowKernel::Conv(g, ConvOp::BackpropInput) => [g.output_len(), g.kernel_len(), g.input_len()],
            WindowKernel::Conv(g, ConvOp::BackpropFilter) => [g.input_len(), g.output_len(), g.kernel_len()],
            WindowKernel::Pool(g, false) => [g.input_len(), 0, g.output_len()],
            WindowKernel::Pool(g, true) => [g.input_len(), g.output_len(), g.input_len()],
        }
    }

    /// Runs the kernel; the slices have the lengths of [`lens`](Self::lens) and
    /// [`scratch_len`](Self::scratch_len).
    pub fn run(
        &self,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        threads: usize,
    ) -> Result<(), String> {
        match *self {
            WindowKernel::Conv(g, ConvOp::Forward) => conv::conv2d(&g, a, b, out, scratch, threads),
            WindowKernel::Conv(g, ConvOp::BackpropInput) => {
                conv::conv2d_backprop_input(&g, a, b, out, scratch, threads)
            }
            WindowKernel::Conv(g, ConvOp::BackpropFilter) => {
                conv::conv2d_backprop_filter(&g, a, b, out, scratch, threads)
            }
            WindowKernel::Pool(g, false) => {
                return pool::pool2d(&g, a, out, threads).map_err(|e| e.to_string());
            }
            WindowKernel::Pool(g, true) => {
                return pool::pool2d_grad(&g, a, b, out, threads).map_err(|e| e.to_string());
            }
        }
        .map_err(|e| e.to_string())
    }
}

/// Multiply-adds of a product that take about as long as pooling visits one element
/// (memory-bound), to weigh pooling against the products' threshold for threads: the
/// MNIST CNN's pooling (692k elements) gets them, a 65k-element one does not.
const POOL_VISIT_COST: usize = 16;

/// The native kernel of a fallback step and the threads it gets, when it has one: a
/// window op on f32 operands.
pub(super) fn window_step(
    kind: &StepKind,
    g: &Graph,
    shapes: &[Vec<usize>],
    options: PlanOptions,
) -> Option<(WindowKernel, usize)> {
    let StepKind::Fallback { node } = kind else { return None };
    let n = g.node(*node);
    if std::iter::once(node).chain(&n.inputs).any(|&v| g.ty(v).dtype != DType::F32) {
        return None;
    }
    let operands: Vec<&[usize]> = n.inputs.iter().map(|i| shapes[i.index()].as_slice()).collect();
    let kernel = WindowKernel::of(&n.op, &operands, &shapes[node.index()])?;
    let cost = match kernel {
        WindowKernel::Conv(..) => kernel.work(),
        WindowKernel::Pool(..) => kernel.work() * POOL_VISIT_COST,
    };
    let threads = gemm_threads(cost, options.threads, options.parallel_threshold);
    Some((kernel, threads))
}
