//! Graph passes, one file a pass, each a function from a graph to a graph.
//! `fuse` runs the fusions `xltc compile` applies unless asked not to.

mod fuse_attention;
mod fuse_linear;
mod rewrite;

pub use fuse_attention::fuse_attention;
pub use fuse_linear::fuse_linear;

use crate::ir::Graph;

/// Every fusion: GEMM + bias (+ GELU) as one Linear, and attention (scores,
/// mask, softmax, weighted sum) as one kernel.
pub fn fuse(graph: &Graph) -> Graph {
    fuse_attention(&fuse_linear(graph))
}
