//! The intermediate representation: typed SSA graphs over the primitive ops.
//!
//! `graph` holds the arena and `builder` its typed constructors, `op` the primitive set,
//! `printer` the stable text form (documented in `docs/ir.md`), `verify` the invariant
//! checker that runs after every pass in debug builds, `interp` the reference interpreter
//! and `simplify` the folding, CSE and dead-code passes; `pool_first` moves max pooling
//! ahead of the monotone maps that feed it.

mod builder;
mod graph;
pub mod interp;
mod op;
pub mod pool_first;
mod printer;
pub mod simplify;
mod verify;

pub use graph::{Graph, Init, InputInfo, Node, NodeId, ParamInfo};
pub use interp::{RunError, RunOptions, run};
pub use op::{BinaryOp, Distribution, Op, Padding, PoolKind, ReduceOp, ScanOutput, UnaryOp, fmt_f64};
pub use printer::print_graph;
pub use verify::{VerifyError, verify};

/// Runs the verifier in debug builds and panics with an IR dump on failure: a failure is a
/// compiler bug, never a user error.
pub fn debug_verify(graph: &Graph, after: &str) {
    if cfg!(debug_assertions)
        && let Err(e) = verify(graph)
    {
        panic!("IR verifier failed after {after}: {e}\n{}", print_graph(graph));
    }
}
