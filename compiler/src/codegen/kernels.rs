//! One kernel instance for each IR op: which template, with which constants,
//! reading which values, over how many workgroups.

use crate::ir::{AlignmentLoss, Graph, Op, ValueId};

use super::memory::table_parts;
use super::templates::Template;
use super::CodegenOptions;

/// Threads a workgroup for the one-thread-an-element kernels.
const ELEMENT_WORKGROUP: u32 = 256;
/// Threads a workgroup for one-thread-a-row kernels and the LayerNorm reduction.
const ROW_WORKGROUP: u32 = 64;
/// The GEMM's workgroup is MATMUL_THREADS_SIDE x MATMUL_THREADS_SIDE threads,
/// each computing up to MATMUL_MAX_THREAD_M rows of MATMUL_THREAD_N (two
/// vec4) columns; k tiles are MATMUL_TILE_K deep.
const MATMUL_THREADS_SIDE: usize = 8;
const MATMUL_MAX_THREAD_M: usize = 8;
const MATMUL_THREAD_N: usize = 8;
const MATMUL_TILE_K: usize = 16;
/// Rows and threads a workgroup of the fused GEMM + bias + residual +
/// LayerNorm, which owns whole rows.
const LINEAR_NORM_ROWS: usize = 8;
const LINEAR_NORM_WORKGROUP: usize = 128;
const LINEAR_NORM_TILE_K: usize = 32;
/// WebGPU's default maxComputeWorkgroupsPerDimension.
const MAX_GROUPS_PER_DIMENSION: u32 = 65_535;

pub struct KernelInstance {
    pub template: Template,
    pub constants: Vec<(&'static str, String)>,
    /// The values bound read-only, in binding order; the output comes last.
    pub reads: Vec<ValueId>,
    pub workgroups: [u32; 3],
    /// The kernel writes only part of its output (a gather's gradient
    /// writes the rows its ids picked): codegen zeroes the output first.
    pub zeroed: bool,
}

/// Workgroups for `groups` work items spread over x and y, and the x count the
/// shader needs to rebuild a flat index.
fn grid(groups: usize) -> ([u32; 3], u32) {
    let groups = groups.max(1) as u32;
    let x = groups.min(MAX_GROUPS_PER_DIMENSION);
    ([x, groups.div_ceil(x), 1], x)
}

pub(super) fn per_element(count: usize) -> ([u32; 3], Vec<(&'static str, String)>) {
    let (workgroups, groups_x) = grid(count.div_ceil(ELEMENT_WORKGROUP as usize));
    let constants = vec![
        ("WORKGROUP", ELEMENT_WORKGROUP.to_string()),
        ("GROUPS_X", groups_x.to_string()),
    ];
    (workgroups, constants)
}

fn per_row_thread(rows: usize) -> ([u32; 3], Vec<(&'static str, String)>) {
    let (workgroups, groups_x) = grid(rows.div_ceil(ROW_WORKGROUP as usize));
    let constants = vec![
        ("WORKGROUP", ROW_WORKGROUP.to_string()),
        ("GROUPS_X", groups_x.to_string()),
    ];
    (workgroups, constants)
}

/// A workgroup a row of a [rows, width] value (the LayerNorm family).
fn per_row_workgroup([rows, width]: [usize; 2]) -> ([u32; 3], Vec<(&'static str, String)>) {
    let (workgroups, groups_x) = grid(rows);
    let constants = vec![
        ("ROWS", rows.to_string()),
        ("WIDTH", width.to_string()),
        ("WORKGROUP", ROW_WORKGROUP.to_string()),
        ("GROUPS_X", groups_x.to_string()),
    ];
    (workgroups, constants)
}

/// The kernel that computes `op`.
pub fn instance(
    graph: &Graph,
    output: ValueId,
    op: &Op,
    options: &CodegenOptions,
) -> KernelInstance {
    let max_binding_bytes = options.max_binding_bytes;
    let shape = |id: ValueId| graph.value(id).shape.clone();
    let count = graph.value(output).elements();
    let (batch, seq) = (graph.batch, graph.seq);
    let last = |id: ValueId| *graph.value(id).shape.last().expect("not a scalar");
    let (template, constants, reads, workgroups) = match *op {
        Op::Gather { table, ids } => {
            let (workgroups, grid) = per_element(count);
            let [rows, width] = dims2(&shape(table));
            let (rows_per_part, _) = table_parts(rows, width, max_binding_bytes);
            let c = vec![
                ("ROWS", graph.value(ids).elements().to_string()),
                ("WIDTH", width.to_string()),
                ("TABLE_ROWS", rows.to_string()),
                ("ROWS_PER_PART", rows_per_part.to_string()),
            ];
            (
                Template::Gather,
                [c, grid].concat(),
                vec![table, ids],
                workgroups,
            )
        }
        Op::Add { a, b } | Op::AddBias { x: a, bias: b } => {
            let (workgroups, grid) = per_element(count);
            let c = vec![
                ("COUNT", count.to_string()),
                ("B_LEN", graph.value(b).elements().to_string()),
            ];
            (Template::Binary, [c, grid].concat(), vec![a, b], workgroups)
        }
        Op::GeluBackward { x: a, dy } | Op::TanhBackward { y: a, dy } => {
            let (workgroups, grid) = per_element(count);
            let function = if matches!(op, Op::GeluBackward { .. }) {
                0
            } else {
                1
            };
            let c = vec![
                ("COUNT", count.to_string()),
                ("FUNCTION", function.to_string()),
            ];
            (
                Template::ActivationBackward,
                [c, grid].concat(),
                vec![a, dy],
                workgroups,
            )
        }
        Op::ColumnSum { dy } => {
            let [rows, cols] = dims2(&shape(dy));
            let (workgroups, grid) = per_element(cols);
            let c = vec![("ROWS", rows.to_string()), ("COLS", cols.to_string())];
            (
                Template::ColumnSum,
                [c, grid].concat(),
                vec![dy],
                workgroups,
            )
        }
        Op::Gelu { x } | Op::Tanh { x } => {
            let (workgroups, grid) = per_element(count);
            let function = if matches!(op, Op::Gelu { .. }) { 0 } else { 1 };
            let c = vec![
                ("COUNT", count.to_string()),
                ("FUNCTION", function.to_string()),
            ];
            (
                Template::Activation,
                [c, grid].concat(),
                vec![x],
                workgroups,
            )
        }
        Op::MatMul { .. }
        | Op::Linear { .. }
        | Op::MatMulBackwardX { .. }
        | Op::MatMulBackwardWeight { .. } => {
            let (key, operands, bias) = gemm_of(graph, op).expect("a GEMM op");
            gemm(key, operands, bias, options)
        }
        Op::Attention {
            query,
            key,
            value,
            mask,
            heads,
            packed,
        } => {
            let (workgroups, groups_x) = grid(batch * heads * seq);
            let stride = last(query);
            let width = if packed { stride / 3 } else { stride };
            let offsets = if packed { [0, 1, 2] } else { [0, 0, 0] }.map(|i| i * width);
            let mut c = attention_constants(batch, seq, heads, width);
            c.extend([
                ("STRIDE", stride.to_string()),
                ("Q_OFFSET", offsets[0].to_string()),
                ("K_OFFSET", offsets[1].to_string()),
                ("V_OFFSET", offsets[2].to_string()),
                ("WORKGROUP", ROW_WORKGROUP.to_string()),
                ("GROUPS_X", groups_x.to_string()),
            ]);
            (
                Template::Attention,
                c,
                vec![query, key, value, mask],
                workgroups,
            )
        }
        Op::Embeddings {
            table,
            ids,
            words,
            types,
            eps,
        } => {
            let [rows, width] = dims2(&shape(table));
            let (rows_per_part, _) = table_parts(rows, width, max_binding_bytes);
            let tokens = batch * seq;
            let (workgroups, groups_x) = grid(tokens);
            let c = vec![
                ("TOKENS", tokens.to_string()),
                ("WIDTH", width.to_string()),
                ("TABLE_ROWS", rows.to_string()),
                ("ROWS_PER_PART", rows_per_part.to_string()),
                ("WORDS", words.to_string()),
                ("TYPES", types.to_string()),
                ("EPS", format!("{eps:e}")),
                ("WORKGROUP", ROW_WORKGROUP.to_string()),
                ("GROUPS_X", groups_x.to_string()),
            ];
            (Template::Embeddings, c, vec![table, ids], workgroups)
        }
        Op::LinearNorm {
            x,
            weight,
            bias,
            residual,
            gamma,
            beta,
            eps,
        } => {
            let ([m, k], [n, _]) = (dims2(&shape(x)), dims2(&shape(weight)));
            let (workgroups, groups_x) = grid(m.div_ceil(LINEAR_NORM_ROWS));
            let c = vec![
                ("M", m.to_string()),
                ("N", n.to_string()),
                ("K", k.to_string()),
                ("ROWS", LINEAR_NORM_ROWS.to_string()),
                ("TILE_K", LINEAR_NORM_TILE_K.to_string()),
                ("COLS", n.div_ceil(LINEAR_NORM_WORKGROUP).to_string()),
                ("EPS", format!("{eps:e}")),
                ("WORKGROUP", LINEAR_NORM_WORKGROUP.to_string()),
                ("GROUPS_X", groups_x.to_string()),
            ];
            let reads = vec![x, weight, bias, residual, gamma, beta];
            (Template::LinearNorm, c, reads, workgroups)
        }
        Op::Head {
            x,
            dense_weight,
            dense_bias,
            out_weight,
            out_bias,
        } => {
            let c = vec![
                ("BATCH", batch.to_string()),
                ("SEQ", seq.to_string()),
                ("WIDTH", last(x).to_string()),
                ("LABELS", shape(out_weight)[0].to_string()),
                ("WORKGROUP", ROW_WORKGROUP.to_string()),
            ];
            let reads = vec![x, dense_weight, dense_bias, out_weight, out_bias];
            (Template::Head, c, reads, [batch as u32, 1, 1])
        }
        Op::LayerNorm {
            x,
            gamma,
            beta,
            eps,
        } => {
            let (workgroups, mut c) = per_row_workgroup(dims2(&shape(x)));
            c.push(("EPS", format!("{eps:e}")));
            (Template::LayerNorm, c, vec![x, gamma, beta], workgroups)
        }
        Op::AttentionScores { query, key, heads } if last(query) / heads % 4 == 0 => {
            attention_dots(batch, seq, heads, last(query), [query, key], true)
        }
        Op::AttentionScores { query, key, heads } => {
            let (workgroups, grid) = per_element(count);
            let c = attention_constants(batch, seq, heads, last(query));
            (
                Template::AttentionScores,
                [c, grid].concat(),
                vec![query, key],
                workgroups,
            )
        }
        Op::MaskedSoftmax { scores, mask } => {
            let heads = shape(scores)[1];
            let (workgroups, grid) = per_row_thread(batch * heads * seq);
            let c = vec![
                ("BATCH", batch.to_string()),
                ("SEQ", seq.to_string()),
                ("HEADS", heads.to_string()),
            ];
            (
                Template::MaskedSoftmax,
                [c, grid].concat(),
                vec![scores, mask],
                workgroups,
            )
        }
        Op::AttentionContext {
            probs,
            value,
            heads,
        } if last(value) / heads % 4 == 0 => {
            attention_sums(batch, seq, heads, last(value), [probs, value], false, false)
        }
        Op::AttentionContext {
            probs,
            value,
            heads,
        } => {
            let (workgroups, grid) = per_element(count);
            let c = attention_constants(batch, seq, heads, last(value));
            (
                Template::AttentionContext,
                [c, grid].concat(),
                vec![probs, value],
                workgroups,
            )
        }
        Op::FirstToken { x } => {
            let (workgroups, grid) = per_element(count);
            let c = pooling_constants(batch, seq, last(x));
            (
                Template::FirstToken,
                [c, grid].concat(),
                vec![x],
                workgroups,
            )
        }
        Op::MeanPool { x, mask } => {
            let (workgroups, grid) = per_element(count);
            let c = pooling_constants(batch, seq, last(x));
            (
                Template::MeanPool,
                [c, grid].concat(),
                vec![x, mask],
                workgroups,
            )
        }
        Op::L2Normalize { x } | Op::Softmax { x } => {
            let [rows, width] = dims2(&shape(x));
            let (workgroups, grid) = per_row_thread(rows);
            let mode = if matches!(op, Op::Softmax { .. }) {
                0
            } else {
                1
            };
            let c = vec![
                ("ROWS", rows.to_string()),
                ("WIDTH", width.to_string()),
                ("MODE", mode.to_string()),
            ];
            (
                Template::RowNormalize,
                [c, grid].concat(),
                vec![x],
                workgroups,
            )
        }
        Op::LayerNormStatistics { x, eps } => {
            let (workgroups, mut c) = per_row_workgroup(dims2(&shape(x)));
            c.push(("EPS", format!("{eps:e}")));
            (Template::LayerNormStatistics, c, vec![x], workgroups)
        }
        Op::LayerNormBackwardX {
            dy,
            x,
            statistics,
            gamma,
        } => {
            let (workgroups, c) = per_row_workgroup(dims2(&shape(x)));
            let reads = vec![dy, x, statistics, gamma];
            (Template::LayerNormBackward, c, reads, workgroups)
        }
        Op::LayerNormBackwardGamma { dy, x, statistics } => {
            let [rows, width] = dims2(&shape(x));
            let (workgroups, grid) = per_element(width);
            let c = vec![("ROWS", rows.to_string()), ("WIDTH", width.to_string())];
            (
                Template::LayerNormGammaBackward,
                [c, grid].concat(),
                vec![dy, x, statistics],
                workgroups,
            )
        }
        Op::MaskedSoftmaxBackward { probs, dy } => {
            let seq_len = last(probs);
            let rows = count / seq_len;
            let (workgroups, grid) = per_row_thread(rows);
            let c = vec![("ROWS", rows.to_string()), ("SEQ", seq_len.to_string())];
            (
                Template::MaskedSoftmaxBackward,
                [c, grid].concat(),
                vec![probs, dy],
                workgroups,
            )
        }
        Op::AttentionScoresBackward {
            dy,
            other,
            heads,
            of_key,
        } => {
            let mode = if of_key { 1 } else { 0 };
            attention_backward(batch, seq, heads, last(other), count, mode, [dy, other])
        }
        Op::AttentionContextBackwardProbs { dy, value, heads } => {
            attention_backward(batch, seq, heads, last(dy), count, 2, [dy, value])
        }
        Op::AttentionContextBackwardValue { dy, probs, heads } => {
            attention_backward(batch, seq, heads, last(dy), count, 3, [dy, probs])
        }
        Op::FirstTokenBackward { dy } | Op::MeanPoolBackward { dy, .. } => {
            let (workgroups, grid) = per_element(count);
            let mut c = pooling_constants(batch, seq, last(dy));
            let (mode, mask) = match *op {
                Op::MeanPoolBackward { mask, .. } => (1, mask),
                _ => (0, dy),
            };
            c.push(("MODE", mode.to_string()));
            (
                Template::PoolingBackward,
                [c, grid].concat(),
                vec![dy, mask],
                workgroups,
            )
        }
        Op::CrossEntropy {
            logits,
            labels,
            example_mask,
        }
        | Op::CrossEntropyBackward {
            logits,
            labels,
            example_mask,
        } => {
            let mode = u32::from(matches!(op, Op::CrossEntropyBackward { .. }));
            let (workgroups, _) = per_row_thread(batch);
            let c = vec![
                ("BATCH", batch.to_string()),
                ("LABELS", last(logits).to_string()),
                ("MODE", mode.to_string()),
                ("WORKGROUP", ROW_WORKGROUP.to_string()),
            ];
            let reads = vec![logits, labels, example_mask];
            (Template::CrossEntropy, c, reads, workgroups)
        }
        Op::Alignment {
            x,
            example_mask,
            loss,
        }
        | Op::AlignmentBackward {
            x,
            example_mask,
            loss,
        } => {
            let mode = u32::from(matches!(op, Op::AlignmentBackward { .. }));
            let pairs = graph.value(x).shape[0] / 2;
            let mut c = vec![
                ("PAIRS", pairs.to_string()),
                ("WIDTH", last(x).to_string()),
                ("MODE", mode.to_string()),
                ("WORKGROUP", ROW_WORKGROUP.to_string()),
            ];
            let reads = vec![x, example_mask];
            match loss {
                // A thread a pair, writing both rows (both run pair_loss_main.wgsl).
                AlignmentLoss::Cosine => (Template::Alignment, c, reads, per_row_thread(pairs).0),
                AlignmentLoss::SymmetricKl => {
                    (Template::SymmetricKl, c, reads, per_row_thread(pairs).0)
                }
                // A thread a row.
                AlignmentLoss::Contrastive { temperature } => {
                    c.push((
                        "TEMPERATURE_BITS",
                        (temperature as f32).to_bits().to_string(),
                    ));
                    let workgroups = per_row_thread(2 * pairs).0;
                    (Template::Contrastive, c, reads, workgroups)
                }
            }
        }
        Op::Dropout { x: a, key, site, p }
        | Op::DropoutBackward {
            dy: a,
            key,
            site,
            p,
        } => {
            let (workgroups, grid) = per_element(count);
            // The reference keeps an element when word / 2^32 >= p: in
            // integers, word >= ceil(p 2^32), exact in f64.
            let threshold = (f64::from(p) * 4_294_967_296.0).ceil();
            assert!(
                (0.0..4_294_967_296.0).contains(&threshold),
                "dropout probability {p} outside [0, 1)"
            );
            let scale = (1.0 / (1.0 - f64::from(p))) as f32;
            let c = vec![
                ("COUNT", count.to_string()),
                ("SITE", site.to_string()),
                ("THRESHOLD", (threshold as u32).to_string()),
                ("SCALE", format!("{scale:e}")),
            ];
            (
                Template::Dropout,
                [c, grid].concat(),
                vec![a, key],
                workgroups,
            )
        }
        Op::GatherBackward { dy, ids, rows } => {
            let mut instance = gather_backward(graph, dy, ids, 0..rows, false);
            instance.zeroed = true;
            return instance;
        }
    };
    finish(template, constants, reads, workgroups)
}

/// The gradient of a gather's table rows `rows` from `dy` and `ids`:
/// written into an output of those rows, or added into it (`accumulate`).
pub(super) fn gather_backward(
    graph: &Graph,
    dy: ValueId,
    ids: ValueId,
    rows: std::ops::Range<usize>,
    accumulate: bool,
) -> KernelInstance {
    let [tokens, width] = dims2(&graph.value(dy).shape);
    let (workgroups, grid) = per_element(tokens * width);
    let c = vec![
        ("TOKENS", tokens.to_string()),
        ("WIDTH", width.to_string()),
        ("FIRST_ROW", rows.start.to_string()),
        ("ROWS", rows.len().to_string()),
        ("ACCUMULATE", u32::from(accumulate).to_string()),
    ];
    finish(
        Template::GatherBackward,
        [c, grid].concat(),
        vec![dy, ids],
        workgroups,
    )
}

pub(super) fn finish(
    template: Template,
    mut constants: Vec<(&'static str, String)>,
    reads: Vec<ValueId>,
    workgroups: [u32; 3],
) -> KernelInstance {
    constants.sort_by_key(|(name, _)| *name);
    KernelInstance {
        template,
        constants,
        reads,
        workgroups,
        zeroed: false,
    }
}

/// A kernel over the `count` elements of a buffer that codegen binds
/// itself: the fill that zeroes an output, the add into a gradient buffer.
pub fn over_buffer(template: Template, count: usize) -> KernelInstance {
    let (workgroups, grid) = per_element(count);
    let c = vec![("COUNT", count.to_string())];
    finish(template, [c, grid].concat(), Vec::new(), workgroups)
}

/// One of the un-fused attention's backward products (attention_backward.wgsl's
/// modes), over `count` output elements.
/// Where the head width is a multiple of 4, blocks of 4 x 4 outputs a
/// thread: attention_sums.wgsl for the token-shaped gradients (reading the
/// scores-shaped operand first), attention_dots.wgsl for the
/// probabilities'; else attention_backward.wgsl, one element a thread.
fn attention_backward(
    batch: usize,
    seq: usize,
    heads: usize,
    width: usize,
    count: usize,
    mode: u32,
    [a, b]: [ValueId; 2],
) -> Parts {
    if (width / heads) % 4 == 0 {
        return match mode {
            0 => attention_sums(batch, seq, heads, width, [a, b], false, true),
            1 => attention_sums(batch, seq, heads, width, [a, b], true, true),
            2 => attention_dots(batch, seq, heads, width, [a, b], false),
            _ => attention_sums(batch, seq, heads, width, [b, a], true, false),
        };
    }
    let (workgroups, grid) = per_element(count);
    let c = attention_constants(batch, seq, heads, width);
    let mode_c = vec![("MODE", mode.to_string())];
    (
        Template::AttentionBackward,
        [c, mode_c, grid].concat(),
        vec![a, b],
        workgroups,
    )
}

/// attention_sums.wgsl: `[scores, tokens]`, the scores read transposed or
/// not, the sums scaled or not.
fn attention_sums(
    batch: usize,
    seq: usize,
    heads: usize,
    width: usize,
    reads: [ValueId; 2],
    transposed: bool,
    scaled: bool,
) -> Parts {
    let quads = width / heads / 4;
    let (workgroups, grid) = per_element(batch * heads * seq.div_ceil(4) * quads);
    let c = vec![
        ("TRANSPOSED", u32::from(transposed).to_string()),
        ("SCALED", u32::from(scaled).to_string()),
    ];
    let constants = [attention_constants(batch, seq, heads, width), c, grid].concat();
    (
        Template::AttentionSums,
        constants,
        reads.to_vec(),
        workgroups,
    )
}

/// attention_dots.wgsl: the dot products of `reads`' heads, scaled or not.
fn attention_dots(
    batch: usize,
    seq: usize,
    heads: usize,
    width: usize,
    reads: [ValueId; 2],
    scaled: bool,
) -> Parts {
    let (workgroups, grid) = per_element(batch * heads * seq * seq.div_ceil(4));
    let c = vec![("SCALED", u32::from(scaled).to_string())];
    let constants = [attention_constants(batch, seq, heads, width), c, grid].concat();
    (
        Template::AttentionDots,
        constants,
        reads.to_vec(),
        workgroups,
    )
}

/// Rows and columns of out a workgroup of matmul_lanes.wgsl computes.
const MATMUL_LANES_ROWS: usize = 16;
const MATMUL_LANES_COLUMNS: usize = 256;

type Parts = (
    Template,
    Vec<(&'static str, String)>,
    Vec<ValueId>,
    [u32; 3],
);

/// A GEMM out [m, n] = x [m, k] times w [n, k] transposed, with either
/// operand possibly stored k-major ([k, m], [k, n]): the backward GEMMs read
/// their operands where they lie; with the Linear epilogue (bias, then GELU
/// when asked) or without. What `xltc compile --tune` times and chooses a
/// kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GemmKey {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub x_transposed: bool,
    pub w_transposed: bool,
    pub bias: bool,
    pub gelu: bool,
}

impl GemmKey {
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            x_transposed: false,
            w_transposed: false,
            bias: false,
            gelu: false,
        }
    }

    /// Whether every load is an aligned vec4, as the lane kernel needs.
    pub fn suits_lanes(&self) -> bool {
        self.k % 4 == 0
            && (!self.x_transposed || self.m % 4 == 0)
            && (!self.w_transposed || self.n % 4 == 0)
    }
}

/// The GEMM `op` is, with its two operands and bias; None for other ops.
pub fn gemm_of(graph: &Graph, op: &Op) -> Option<(GemmKey, [ValueId; 2], Option<ValueId>)> {
    let dims = |id: ValueId| dims2(&graph.value(id).shape);
    Some(match *op {
        Op::MatMul { x, weight } => {
            let ([m, k], [n, _]) = (dims(x), dims(weight));
            (GemmKey::new(m, n, k), [x, weight], None)
        }
        Op::Linear {
            x,
            weight,
            bias,
            gelu,
        } => {
            let ([m, k], [n, _]) = (dims(x), dims(weight));
            let key = GemmKey {
                bias: true,
                gelu,
                ..GemmKey::new(m, n, k)
            };
            (key, [x, weight], Some(bias))
        }
        // dx = dy [m, n] times w [n, k]: w is the right operand stored k-major.
        Op::MatMulBackwardX { dy, weight } => {
            let ([m, n], [_, k]) = (dims(dy), dims(weight));
            let key = GemmKey {
                w_transposed: true,
                ..GemmKey::new(m, k, n)
            };
            (key, [dy, weight], None)
        }
        // dw = dy [m, n] transposed times x [m, k]: both operands k-major.
        Op::MatMulBackwardWeight { dy, x } => {
            let ([m, n], [_, k]) = (dims(dy), dims(x));
            let key = GemmKey {
                x_transposed: true,
                w_transposed: true,
                ..GemmKey::new(n, k, m)
            };
            (key, [dy, x], None)
        }
        _ => return None,
    })
}

/// The kernels a GEMM can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GemmKernel {
    /// matmul.wgsl: workgroup memory, barriers, register blocks.
    Tiled,
    /// matmul_lanes.wgsl: no workgroup memory, for adapters that run lanes
    /// as SIMD on a CPU (4 to 6 times the tiled one's GFLOP/s on lavapipe,
    /// benches/gemm.rs).
    Lanes,
    /// The lane kernel with x's rows loaded once per 8 lanes and handed on
    /// by subgroupBroadcast: only for adapters with subgroups of 8 lanes or
    /// more, which the runtime checks.
    LanesSubgroup,
}

impl GemmKernel {
    /// The kernel family's name, as the profile, the tuning record and
    /// `--gemm` spell it.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Tiled => "matmul",
            GemmKernel::Lanes => "matmul_lanes",
            GemmKernel::LanesSubgroup => "matmul_lanes_subgroup",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            GemmKernel::Tiled,
            GemmKernel::Lanes,
            GemmKernel::LanesSubgroup,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// The GEMM `layout` on the kernel the options ask for (a tuned choice for
/// this GEMM, else `gemm`); a lane kernel only where the layout suits it,
/// else the tiled one. Without a bias, the left operand is bound in its
/// place and never read.
fn gemm(
    layout: GemmKey,
    [x, w]: [ValueId; 2],
    bias: Option<ValueId>,
    options: &CodegenOptions,
) -> Parts {
    let GemmKey { m, n, k, gelu, .. } = layout;
    let reads = vec![x, w, bias.unwrap_or(x)];
    let kernel = options
        .tuned_gemms
        .get(&layout)
        .copied()
        .unwrap_or(options.gemm);
    if kernel != GemmKernel::Tiled && layout.suits_lanes() {
        // dx = dy w (w read k-major) runs as its transpose, w^T dy^T, stored
        // transposed: w becomes the operand whose rows the lanes share
        // (loaded once a workgroup, 64 bytes of each of its rows), dy the one
        // each lane streams along k, as a forward's weight. Read k-major as
        // the right operand, each lane took 16 bytes of a row of w a step of
        // k, every row once a workgroup of rows: rows 3,072 long (12 KiB
        // apart) left lavapipe at a third of the forward's GFLOP/s
        // (benches/RESULTS.md).
        let swapped = layout.w_transposed && !layout.x_transposed && bias.is_none();
        let (m, n, x_transposed, w_transposed, reads) = if swapped {
            (n, m, true, false, vec![w, x, w])
        } else {
            (m, n, layout.x_transposed, layout.w_transposed, reads)
        };
        let c = vec![
            ("M", m.to_string()),
            ("N", n.to_string()),
            ("K", k.to_string()),
            ("HAS_BIAS", u32::from(bias.is_some()).to_string()),
            ("ACTIVATION", u32::from(gelu).to_string()),
            ("W_TRANSPOSED", u32::from(w_transposed).to_string()),
            ("X_TRANSPOSED", u32::from(x_transposed).to_string()),
            ("OUT_TRANSPOSED", u32::from(swapped).to_string()),
        ];
        let workgroups = [
            n.div_ceil(MATMUL_LANES_COLUMNS) as u32,
            m.div_ceil(MATMUL_LANES_ROWS) as u32,
            1,
        ];
        let template = if kernel == GemmKernel::LanesSubgroup {
            Template::MatmulLanesSubgroup
        } else {
            Template::MatmulLanes
        };
        return (template, c, reads, workgroups);
    }
    // Rows a thread: enough for the workgroup to cover m, at most the maximum.
    let thread_m = m
        .div_ceil(MATMUL_THREADS_SIDE)
        .next_power_of_two()
        .min(MATMUL_MAX_THREAD_M);
    let tile_m = MATMUL_THREADS_SIDE * thread_m;
    let tile_n = MATMUL_THREADS_SIDE * MATMUL_THREAD_N;
    let workgroups = [n.div_ceil(tile_n) as u32, m.div_ceil(tile_m) as u32, 1];
    let c = vec![
        ("M", m.to_string()),
        ("N", n.to_string()),
        ("K", k.to_string()),
        ("TILE_K", MATMUL_TILE_K.to_string()),
        ("THREADS_SIDE", MATMUL_THREADS_SIDE.to_string()),
        ("THREAD_M", thread_m.to_string()),
        ("HAS_BIAS", u32::from(bias.is_some()).to_string()),
        ("ACTIVATION", u32::from(gelu).to_string()),
        ("X_TRANSPOSED", u32::from(layout.x_transposed).to_string()),
        ("W_TRANSPOSED", u32::from(layout.w_transposed).to_string()),
    ];
    (Template::Matmul, c, reads, workgroups)
}

fn dims2(shape: &[usize]) -> [usize; 2] {
    match *shape {
        [m, n] => [m, n],
        _ => panic!("expected a matrix, got shape {shape:?}"),
    }
}

fn attention_constants(
    batch: usize,
    seq: usize,
    heads: usize,
    width: usize,
) -> Vec<(&'static str, String)> {
    vec![
        ("BATCH", batch.to_string()),
        ("SEQ", seq.to_string()),
        ("HEADS", heads.to_string()),
        ("HEAD_DIM", (width / heads).to_string()),
    ]
}

fn pooling_constants(batch: usize, seq: usize, width: usize) -> Vec<(&'static str, String)> {
    vec![
        ("BATCH", batch.to_string()),
        ("SEQ", seq.to_string()),
        ("WIDTH", width.to_string()),
    ]
}
