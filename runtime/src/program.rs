//! A compiled program: what the compiler decided and the runtime carries out.
//! Buffers, WGSL kernels, the ordered dispatches that bind them, and where the
//! inputs go and the outputs come from. The runtime decides nothing here.

use serde::{Deserialize, Serialize};

/// A buffer, by index into [`Program::buffers`].
pub type BufferId = usize;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BufferRole {
    /// Filled from the named inputs before every run ("input_ids",
    /// "token_type_ids", "position_ids", "attention_mask", the training
    /// inputs, the optimizer's scalars), laid end to end; most buffers hold
    /// one, fused embeddings read the three kinds of ids from one.
    Input(Vec<String>),
    /// Filled once at load with slices of checkpoint weights laid end to
    /// end: the whole of one weight, a part of a table split by rows, or
    /// weights packed for a fused kernel (Q, K and V; embedding tables).
    Weight(Vec<WeightSlice>),
    /// Written and read by kernels only.
    Activation,
    /// The gradient of the parameter slice `.0` (a whole parameter, or the
    /// rows of a table split over bindings, as its weight buffers are),
    /// summed over the micro-batches of an optimizer step: zero when made,
    /// added into by a train step, read and zeroed by the optimizer step.
    /// Like weights and moments, shared by every program of one model.
    Gradient(WeightSlice),
    /// AdamW's first (`order` 1) or second (2) moment of parameter slice
    /// `of`, zero when made, updated in place by the optimizer step.
    Moment { of: WeightSlice, order: u8 },
}

/// `count` elements of the weight of checkpoint name `name`, from element
/// `first`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WeightSlice {
    pub name: String,
    pub first: usize,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferSpec {
    pub name: String,
    pub bytes: u64,
    pub role: BufferRole,
}

/// One specialised WGSL module with a `main` compute entry point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelSpec {
    pub name: String,
    pub wgsl: String,
    /// The fewest lanes a subgroup must have for the kernel to be right
    /// (it broadcasts from lanes up to this index); 0 for a kernel that
    /// uses no subgroup operation. An adapter with smaller subgroups, or
    /// without subgroups, refuses the program (Program::check).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_subgroup_size: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A buffer bound at `@group(0) @binding(i)` for the i-th entry of a dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub buffer: BufferId,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    pub kernel: usize,
    pub bindings: Vec<Binding>,
    pub workgroups: [u32; 3],
    /// Floating-point operations the dispatch does (a multiply-add counts
    /// two; 0 where not counted), for a profile's GFLOP/s.
    #[serde(default)]
    pub flops: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub buffer: BufferId,
    pub shape: Vec<usize>,
}

/// An id input that indexes a table: every id must be below `rows`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdBound {
    pub input: String,
    pub table: String,
    pub rows: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub batch: usize,
    pub seq: usize,
    pub buffers: Vec<BufferSpec>,
    pub kernels: Vec<KernelSpec>,
    pub dispatches: Vec<Dispatch>,
    pub outputs: Vec<OutputSpec>,
    /// Checked by the runtime before every run: a GPU gather cannot fail.
    pub id_bounds: Vec<IdBound>,
}
