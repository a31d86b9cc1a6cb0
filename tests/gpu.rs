//! GPU kernels on whatever adapter wgpu finds (lavapipe on machines without a
//! GPU) against the CPU reference: every op on fresh random inputs, with
//! shapes that are not multiples of the tile sizes, within a relative error of
//! 1e-4 (max |gpu - cpu| / max |cpu|); then whole models against the Hugging
//! Face fixtures. No adapter is a failure, never a skip.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{gpu, model_dir, relative_error, Golden};
use xltc::codegen::{lower, CodegenError, CodegenOptions, GemmKernel};
use xltc::frontend::{Model, ModelOutput};
use xltc::ir::{AlignmentLoss, Graph, Input, Op, Source, ValueId};
use xltc::passes::fuse;
use xltc::reference::{self, run_in};
use xltc_runtime::{Executor, ModelInputs, TrainingInputs};

const TOLERANCE: f64 = 1e-4;
/// Classes of the labels the training inputs hold.
const CLASSES: usize = 3;

/// xorshift64*, seeded from the clock: fresh inputs every run, the seed in
/// every failure message.
struct Random(u64);

impl Random {
    fn fresh() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Random(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-scale, scale).
    fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect()
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
}

/// What a training graph reads: random labels, the last row of a batch of
/// several marked as padding, a perturbation of the word embeddings when
/// the graph reads one, and a dropout key over the whole range of each word.
fn training_inputs_for(graph: &Graph, random: &mut Random) -> TrainingInputs {
    let width = graph.values().find_map(|(_, v)| match v.source {
        Source::Input(Input::WordEmbeddingDelta { width }) => Some(width),
        _ => None,
    });
    let mut example_mask = vec![1.0; graph.batch];
    if graph.batch > 1 {
        example_mask[graph.batch - 1] = 0.0;
    }
    TrainingInputs {
        labels: (0..graph.batch)
            .map(|_| random.below(CLASSES as u32))
            .collect(),
        example_mask,
        word_embedding_delta: random.floats(graph.tokens() * width.unwrap_or(0), 0.1),
        dropout_key: (0..4).map(|_| random.next() as u32).collect(),
    }
}

fn inputs_for(graph: &Graph, random: &mut Random, vocab: u32) -> ModelInputs {
    let tokens = graph.tokens();
    let mut mask = vec![1.0f32; tokens];
    for (b, row) in mask.chunks_mut(graph.seq).enumerate() {
        // Sequence b has b padding slots at its end (never the first token).
        let pad = b.min(graph.seq - 1);
        row[graph.seq - pad..].fill(0.0);
    }
    ModelInputs {
        batch: graph.batch,
        seq: graph.seq,
        input_ids: (0..tokens).map(|_| random.below(vocab)).collect(),
        token_type_ids: (0..tokens as u32).map(|t| t % 2).collect(),
        position_ids: (0..tokens as u32).collect(),
        attention_mask: mask,
    }
}

/// `graph`'s outputs on the GPU.
fn run_on_gpu(
    graph: &Graph,
    inputs: &ModelInputs,
    training: &TrainingInputs,
    options: &CodegenOptions,
) -> BTreeMap<String, xltc_runtime::Output> {
    let compiled = lower(graph, options).unwrap();
    let gpu = gpu();
    let executor = pollster::block_on(Executor::load(gpu, compiled.program.clone(), |n| {
        compiled.weight(n)
    }))
    .unwrap();
    let outputs = pollster::block_on(executor.run_training(gpu, inputs, training)).unwrap();
    outputs.into_iter().collect()
}

/// Runs `graph` on the GPU and on the CPU reference; returns the worst
/// relative error over its outputs.
fn gpu_vs_reference(
    graph: &Graph,
    inputs: &ModelInputs,
    training: &TrainingInputs,
    options: &CodegenOptions,
) -> f64 {
    let on_gpu = run_on_gpu(graph, inputs, training, options);
    let on_cpu = run_in::<f32>(graph, inputs, training).unwrap();
    let mut worst = 0.0f64;
    for (name, expected) in &on_cpu {
        let actual = &on_gpu[name];
        assert_eq!(actual.shape, expected.shape, "{name}");
        let a: Vec<f64> = actual.data.iter().map(|&v| v as f64).collect();
        let e: Vec<f64> = expected.data.iter().map(|&v| v as f64).collect();
        worst = worst.max(relative_error(&a, &e));
    }
    worst
}

fn weight(g: &mut Graph, random: &mut Random, name: &str, shape: &[usize]) -> ValueId {
    let data: Arc<[f32]> = random.floats(shape.iter().product(), 1.0).into();
    g.weight(name, shape.to_vec(), data)
}

/// Builds a one-op graph (plus its random operands), runs it both ways.
fn check_op(
    label: &str,
    batch: usize,
    seq: usize,
    build: impl Fn(&mut Graph, &mut Random) -> ValueId,
) {
    check_op_with(label, batch, seq, &CodegenOptions::default(), build);
}

fn check_op_with(
    label: &str,
    batch: usize,
    seq: usize,
    options: &CodegenOptions,
    build: impl Fn(&mut Graph, &mut Random) -> ValueId,
) {
    let mut random = Random::fresh();
    let seed = random.0;
    let mut g = Graph::new(batch, seq);
    let out = build(&mut g, &mut random);
    g.mark_output("out", out);
    let inputs = inputs_for(&g, &mut random, 29);
    let training = training_inputs_for(&g, &mut random);
    let error = gpu_vs_reference(&g, &inputs, &training, options);
    eprintln!("{label}: relative error {error:.2e}");
    assert!(
        error < TOLERANCE,
        "{label}: relative error {error:e} (seed {seed})"
    );
}

#[test]
fn matmul_on_shapes_off_the_tiles() {
    for (m, n, k) in [
        (70, 37, 45),
        (3, 130, 17),
        (64, 64, 16),
        (1, 1, 1),
        (129, 65, 385),
        (12, 9, 100),
        (20, 70, 33),
    ] {
        check_op(&format!("matmul {m}x{n}x{k}"), 1, 1, |g, r| {
            let x = weight(g, r, "x", &[m, k]);
            let w = weight(g, r, "w", &[n, k]);
            g.op("y", Op::MatMul { x, weight: w })
        });
    }
}

/// A Linear of random x [m, k], weight [n, k] and bias [n], with GELU or not.
fn linear_graph(
    m: usize,
    n: usize,
    k: usize,
    gelu: bool,
) -> impl Fn(&mut Graph, &mut Random) -> ValueId {
    move |g: &mut Graph, r: &mut Random| {
        let x = weight(g, r, "x", &[m, k]);
        let w = weight(g, r, "w", &[n, k]);
        let bias = weight(g, r, "bias", &[n]);
        let linear = Op::Linear {
            x,
            weight: w,
            bias,
            gelu,
        };
        g.op("y", linear)
    }
}

/// The kernel families `graph` lowers to, in the program's order.
fn graph_families(graph: &Graph) -> Vec<String> {
    families_with(graph, &CodegenOptions::default())
}

fn families_with(graph: &Graph, options: &CodegenOptions) -> Vec<String> {
    let program = lower(graph, options).unwrap().program;
    let names = program
        .kernels
        .iter()
        .map(|k| k.name.split('[').next().unwrap().to_owned());
    names.collect()
}

/// The kernel families `build`'s one-op graph lowers to with `options`.
fn families(
    options: &CodegenOptions,
    build: impl Fn(&mut Graph, &mut Random) -> ValueId,
) -> Vec<String> {
    let mut g = Graph::new(1, 1);
    let out = build(&mut g, &mut Random::fresh());
    g.mark_output("out", out);
    families_with(&g, options)
}

/// The lane GEMM (matmul_lanes.wgsl, emitted where every load is an aligned
/// vec4) and its subgroup form (x's rows broadcast from 8 lanes): the plain
/// product, the Linear with bias, with and without GELU, the backward dx
/// (its weight read k-major) and dw (both operands read k-major), on shapes
/// off its blocks of 16 rows x 256 columns, with N not a multiple of 4
/// where the layout allows it. Each case checks that the kernel asked for
/// is the one emitted. The subgroup form needs an adapter with subgroups of
/// 8 lanes or more (lavapipe's have 8): without them the test fails.
#[test]
fn lane_gemms_on_shapes_off_their_blocks() {
    for kernel in [GemmKernel::Lanes, GemmKernel::LanesSubgroup] {
        if kernel == GemmKernel::LanesSubgroup {
            let subgroups = common::gpu().adapter.subgroup_min_size;
            assert!(
                subgroups >= 8,
                "{} has {}: the subgroup lane GEMM cannot be checked here",
                common::gpu().adapter,
                match subgroups {
                    0 => "no subgroups".to_owned(),
                    n => format!("subgroups of {n} lanes"),
                }
            );
        }
        let options = CodegenOptions {
            gemm: kernel,
            ..CodegenOptions::default()
        };
        let family = kernel.name();
        for (m, n, k) in [
            (37, 300, 20),
            (16, 256, 64),
            (1, 3, 4),
            (70, 45, 388),
            (129, 516, 8),
        ] {
            let product = |g: &mut Graph, r: &mut Random| {
                let x = weight(g, r, "x", &[m, k]);
                let w = weight(g, r, "w", &[n, k]);
                g.op("y", Op::MatMul { x, weight: w })
            };
            let linear = |gelu| linear_graph(m, n, k, gelu);
            // dx [m, 4 n'] = dy [m, k] times w [k, 4 n']: inner k, out 4 n'.
            let out = n.next_multiple_of(4);
            let dx = |g: &mut Graph, r: &mut Random| {
                let dy = weight(g, r, "dy", &[m, k]);
                let w = weight(g, r, "w", &[k, out]);
                g.op("dx", Op::MatMulBackwardX { dy, weight: w })
            };
            // dw [4 n', out] = dy [k, 4 n'] transposed times x [k, out]: inner k.
            let dw = |g: &mut Graph, r: &mut Random| {
                let dy = weight(g, r, "dy", &[k, out]);
                let x = weight(g, r, "x", &[k, m.next_multiple_of(4)]);
                g.op("dw", Op::MatMulBackwardWeight { dy, x })
            };
            assert_eq!(families(&options, product), [family]);
            assert_eq!(families(&options, linear(true)), [family]);
            assert_eq!(families(&options, dx), [family]);
            assert_eq!(families(&options, dw), [family]);
            let check = |label: &str, build: &dyn Fn(&mut Graph, &mut Random) -> ValueId| {
                check_op_with(&format!("{family} {label}"), 1, 1, &options, build)
            };
            check(&format!("dw {out}x{m}x{k}"), &dw);
            check(&format!("matmul {m}x{n}x{k}"), &product);
            check(&format!("linear {m}x{n}x{k}"), &linear(false));
            check(&format!("linear gelu {m}x{n}x{k}"), &linear(true));
            check(&format!("dx {m}x{out}x{k}"), &dx);
        }
    }
}

/// The subgroup lane GEMM makes the lane kernel's sums in the lane
/// kernel's order: the same bits, forward and both backward layouts.
#[test]
fn the_subgroup_lane_gemm_gives_the_lane_kernels_bits() {
    // m a multiple of 4 too, so that dw (both operands k-major) suits them.
    let (m, n, k) = (72, 300, 132);
    let mut random = Random::fresh();
    let mut g = Graph::new(1, 1);
    let x = weight(&mut g, &mut random, "x", &[m, k]);
    let w = weight(&mut g, &mut random, "w", &[n, k]);
    let y = g.op("y", Op::MatMul { x, weight: w });
    let dy = weight(&mut g, &mut random, "dy", &[m, n]);
    let dx = g.op("dx", Op::MatMulBackwardX { dy, weight: w });
    let dw = g.op("dw", Op::MatMulBackwardWeight { dy, x });
    for (name, id) in [("y", y), ("dx", dx), ("dw", dw)] {
        g.mark_output(name, id);
    }
    let inputs = inputs_for(&g, &mut random, 29);
    let training = training_inputs_for(&g, &mut random);
    let run = |gemm| {
        let options = CodegenOptions {
            gemm,
            ..CodegenOptions::default()
        };
        let families = families_with(&g, &options);
        assert!(families.iter().all(|f| f == gemm.name()), "{families:?}");
        run_on_gpu(&g, &inputs, &training, &options)
    };
    let (lanes, subgroup) = (run(GemmKernel::Lanes), run(GemmKernel::LanesSubgroup));
    for name in ["y", "dx", "dw"] {
        let (a, b) = (&lanes[name].data, &subgroup[name].data);
        assert_eq!(a.len(), b.len(), "{name}");
        let differ = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(differ, 0, "{name}: {differ} of {} values differ", a.len());
    }
}

#[test]
fn gather_add_bias_and_activations() {
    check_op("gather 5x7 from 29x13", 5, 7, |g, r| {
        let table = weight(g, r, "table", &[29, 13]);
        let ids = g.input(Input::InputIds);
        g.op("e", Op::Gather { table, ids })
    });
    check_op("add 1001", 1, 1, |g, r| {
        let a = weight(g, r, "a", &[7, 143]);
        let b = weight(g, r, "b", &[7, 143]);
        g.op("s", Op::Add { a, b })
    });
    check_op("add_bias 77x37", 1, 1, |g, r| {
        let x = weight(g, r, "x", &[77, 37]);
        let bias = weight(g, r, "bias", &[37]);
        g.op("s", Op::AddBias { x, bias })
    });
    check_op("gelu", 1, 1, |g, r| {
        let x = weight(g, r, "x", &[33, 101]);
        let scaled = g.op("x4", Op::Add { a: x, b: x });
        g.op("y", Op::Gelu { x: scaled })
    });
    check_op("tanh", 1, 1, |g, r| {
        let x = weight(g, r, "x", &[3, 301]);
        g.op("y", Op::Tanh { x })
    });
    // Far out, where tanh as (e^2x - 1) / (e^2x + 1) would overflow to NaN.
    check_op("tanh far out", 1, 1, |g, _| {
        let x = g.weight(
            "x",
            vec![1, 6],
            vec![-1e4, -90.0, -9.5, 9.5, 90.0, 1e4].into(),
        );
        g.op("y", Op::Tanh { x })
    });
}

/// The first backward kernels: GELU's and tanh's gradients (element-wise,
/// counts off the workgroup size) and column sums (a bias's gradient; rows
/// and columns off the tiles), against the CPU reference's `*_backward`.
#[test]
fn backward_activations_and_column_sums() {
    for (rows, cols) in [(33, 101), (1, 7), (300, 3)] {
        check_op(&format!("gelu backward {rows}x{cols}"), 1, 1, |g, r| {
            let x = weight(g, r, "x", &[rows, cols]);
            let x = g.op("x3", Op::Add { a: x, b: x });
            let dy = weight(g, r, "dy", &[rows, cols]);
            g.op("dx", Op::GeluBackward { x, dy })
        });
        check_op(&format!("tanh backward {rows}x{cols}"), 1, 1, |g, r| {
            let x = weight(g, r, "x", &[rows, cols]);
            let y = g.op("y", Op::Tanh { x });
            let dy = weight(g, r, "dy", &[rows, cols]);
            g.op("dx", Op::TanhBackward { y, dy })
        });
        check_op(&format!("column sum {rows}x{cols}"), 1, 1, |g, r| {
            let dy = weight(g, r, "dy", &[rows, cols]);
            g.op("db", Op::ColumnSum { dy })
        });
    }
}

/// The backward GEMMs read their operands where they lie (dx = dy w: w
/// k-major; dw = dyᵀ x: both k-major), on shapes off the 64-wide tiles.
#[test]
fn backward_gemms_on_shapes_off_the_tiles() {
    for (m, n, k) in [
        (70, 37, 45),
        (3, 130, 17),
        (1, 1, 1),
        (129, 65, 385),
        (20, 70, 33),
    ] {
        check_op(&format!("matmul dx {m}x{n}x{k}"), 1, 1, |g, r| {
            let dy = weight(g, r, "dy", &[m, n]);
            let w = weight(g, r, "w", &[n, k]);
            g.op("dx", Op::MatMulBackwardX { dy, weight: w })
        });
        check_op(&format!("matmul dw {m}x{n}x{k}"), 1, 1, |g, r| {
            let dy = weight(g, r, "dy", &[m, n]);
            let x = weight(g, r, "x", &[m, k]);
            g.op("dw", Op::MatMulBackwardWeight { dy, x })
        });
    }
}

/// LayerNorm's saved statistics and its gradients of x and gamma, on rows
/// narrower and wider than the 64-thread workgroup.
#[test]
fn layer_norm_backward_on_narrow_and_wide_rows() {
    for (rows, width) in [(13, 37), (5, 384), (2, 1001), (70, 1)] {
        let operands = |g: &mut Graph, r: &mut Random| {
            let x = weight(g, r, "x", &[rows, width]);
            let statistics = g.op("stats", Op::LayerNormStatistics { x, eps: 1e-5 });
            let dy = weight(g, r, "dy", &[rows, width]);
            (x, statistics, dy)
        };
        check_op(
            &format!("layer_norm statistics {rows}x{width}"),
            1,
            1,
            |g, r| operands(g, r).1,
        );
        check_op(&format!("layer_norm dx {rows}x{width}"), 1, 1, |g, r| {
            let (x, statistics, dy) = operands(g, r);
            let gamma = weight(g, r, "gamma", &[width]);
            let op = Op::LayerNormBackwardX {
                dy,
                x,
                statistics,
                gamma,
            };
            g.op("dx", op)
        });
        check_op(
            &format!("layer_norm dgamma {rows}x{width}"),
            1,
            1,
            |g, r| {
                let (x, statistics, dy) = operands(g, r);
                g.op("dgamma", Op::LayerNormBackwardGamma { dy, x, statistics })
            },
        );
    }
}

/// A LayerNorm whose statistics a backward reads saves them from its own
/// kernel (layer_norm_saving, and no layer_norm_statistics dispatch): its
/// output and the statistics against the reference, and the statistics the
/// same bits as layer_norm_statistics' kernel gives, on rows narrower and
/// wider than the 64-thread workgroup.
#[test]
fn layer_norm_saves_its_statistics_on_narrow_and_wide_rows() {
    for (rows, width) in [(13, 37), (5, 384), (2, 1001), (70, 1)] {
        let mut random = Random::fresh();
        let seed = random.0;
        let mut g = Graph::new(1, 1);
        let x = weight(&mut g, &mut random, "x", &[rows, width]);
        let gamma = weight(&mut g, &mut random, "gamma", &[width]);
        let beta = weight(&mut g, &mut random, "beta", &[width]);
        let eps = 1e-5;
        let y = g.op(
            "y",
            Op::LayerNorm {
                x,
                gamma,
                beta,
                eps,
            },
        );
        // Read after the LayerNorm, as the backward reads it.
        let y2 = g.op("y2", Op::Tanh { x: y });
        let statistics = g.op("stats", Op::LayerNormStatistics { x, eps });
        g.mark_output("y", y2);
        g.mark_output("statistics", statistics);
        let label = format!("layer_norm saving {rows}x{width} (seed {seed})");
        let found = families_with(&g, &CodegenOptions::default());
        assert!(
            found.contains(&"layer_norm_saving".to_owned()),
            "{label}: {found:?}"
        );
        assert!(
            !found.iter().any(|f| f == "layer_norm_statistics"),
            "{label}: {found:?}"
        );
        let inputs = inputs_for(&g, &mut random, 29);
        let training = training_inputs_for(&g, &mut random);
        let error = gpu_vs_reference(&g, &inputs, &training, &CodegenOptions::default());
        eprintln!("{label}: relative error {error:.2e}");
        assert!(error < TOLERANCE, "{label}: relative error {error:e}");
        let options = CodegenOptions::default();
        let saved = run_on_gpu(&g, &inputs, &training, &options)["statistics"].clone();
        let mut alone = Graph::new(1, 1);
        let Source::Weight(data) = &g.value(x).source else {
            unreachable!("x is a weight")
        };
        let x = alone.weight("x", vec![rows, width], data.clone());
        let statistics = alone.op("stats", Op::LayerNormStatistics { x, eps });
        alone.mark_output("statistics", statistics);
        let own = &run_on_gpu(&alone, &inputs, &training, &options)["statistics"];
        let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        assert!(
            bits(&saved.data) == bits(&own.data),
            "{label}: saved statistics differ from layer_norm_statistics'"
        );
    }
}

/// The un-fused attention's backward: the softmax's (from the saved
/// probabilities, padding keys included), the scores' of query and key,
/// the context's of the probabilities and the values.
#[test]
fn attention_backward_with_padding() {
    // Head widths that are multiples of 4 run the 4 x 4 blocked kernels
    // (checked below), the others one element a thread; sequences off the
    // blocks of 4.
    for (batch, seq, heads, head_dim) in [
        (3, 7, 3, 5),
        (2, 33, 2, 12),
        (1, 1, 1, 3),
        (1, 130, 2, 64),
        (2, 6, 1, 4),
    ] {
        let blocked = head_dim % 4 == 0;
        let width = heads * head_dim;
        let tokens = batch * seq;
        let shape = format!("b{batch} s{seq} h{heads} d{head_dim}");
        let probs = |g: &mut Graph, r: &mut Random| {
            let query = weight(g, r, "q", &[tokens, width]);
            let key = weight(g, r, "k", &[tokens, width]);
            let mask = g.input(Input::AttentionMask);
            let scores = g.op("s", Op::AttentionScores { query, key, heads });
            g.op("p", Op::MaskedSoftmax { scores, mask })
        };
        check_op(
            &format!("masked softmax backward {shape}"),
            batch,
            seq,
            |g, r| {
                let probs = probs(g, r);
                let dy = weight(g, r, "dp", &[batch, heads, seq, seq]);
                g.op("ds", Op::MaskedSoftmaxBackward { probs, dy })
            },
        );
        for of_key in [false, true] {
            check_op(
                &format!("scores backward {of_key} {shape}"),
                batch,
                seq,
                |g, r| {
                    let dy = weight(g, r, "ds", &[batch, heads, seq, seq]);
                    let other = weight(g, r, "other", &[tokens, width]);
                    let op = Op::AttentionScoresBackward {
                        dy,
                        other,
                        heads,
                        of_key,
                    };
                    g.op("d", op)
                },
            );
        }
        let context_probs = |g: &mut Graph, r: &mut Random| {
            let dy = weight(g, r, "dc", &[tokens, width]);
            let value = weight(g, r, "v", &[tokens, width]);
            g.op("dp", Op::AttentionContextBackwardProbs { dy, value, heads })
        };
        let context_value = |g: &mut Graph, r: &mut Random| {
            let dy = weight(g, r, "dc", &[tokens, width]);
            let probs = weight(g, r, "p", &[batch, heads, seq, seq]);
            g.op("dv", Op::AttentionContextBackwardValue { dy, probs, heads })
        };
        let expected = |name: &'static str| if blocked { name } else { "attention_backward" };
        let mut graph = Graph::new(batch, seq);
        let dp = context_probs(&mut graph, &mut Random::fresh());
        let dv = context_value(&mut graph, &mut Random::fresh());
        graph.mark_output("dp", dp);
        graph.mark_output("dv", dv);
        assert_eq!(
            graph_families(&graph),
            [expected("attention_dots"), expected("attention_sums")],
            "{shape}"
        );
        check_op(
            &format!("context backward probs {shape}"),
            batch,
            seq,
            context_probs,
        );
        check_op(
            &format!("context backward value {shape}"),
            batch,
            seq,
            |g, r| {
                let probs = probs(g, r);
                let dy = weight(g, r, "dc", &[tokens, width]);
                g.op("dv", Op::AttentionContextBackwardValue { dy, probs, heads })
            },
        );
    }
}

/// The poolings' gradients, the loss and its gradient (the last row of the
/// batch is padding, so its gradient must be zero), and dropout at two
/// rates: the mask must be the reference's exactly, or the error is of the
/// order of the values themselves.
#[test]
fn pooling_loss_and_dropout_gradients() {
    let (batch, seq, width) = (4, 9, 37);
    check_op("first token backward", batch, seq, |g, r| {
        let dy = weight(g, r, "dy", &[batch, width]);
        g.op("dx", Op::FirstTokenBackward { dy })
    });
    check_op("mean pool backward", batch, seq, |g, r| {
        let dy = weight(g, r, "dy", &[batch, width]);
        let mask = g.input(Input::AttentionMask);
        g.op("dx", Op::MeanPoolBackward { dy, mask })
    });
    for backward in [false, true] {
        check_op(&format!("cross entropy {backward}"), batch, seq, |g, r| {
            let logits = weight(g, r, "logits", &[batch, CLASSES]);
            let labels = g.input(Input::Labels);
            let example_mask = g.input(Input::ExampleMask);
            let op = if backward {
                Op::CrossEntropyBackward {
                    logits,
                    labels,
                    example_mask,
                }
            } else {
                Op::CrossEntropy {
                    logits,
                    labels,
                    example_mask,
                }
            };
            g.op("loss", op)
        });
    }
    for (p, count) in [(0.1, 1001), (0.5, 77 * 13), (0.0, 5)] {
        check_op(
            &format!("dropout p {p} over {count}"),
            batch,
            seq,
            |g, r| {
                let x = weight(g, r, "x", &[count]);
                let key = g.input(Input::DropoutKey);
                let dropped = g.op("dropped", Op::Dropout { x, key, site: 7, p });
                g.op(
                    "again",
                    Op::DropoutBackward {
                        dy: dropped,
                        key,
                        site: 7,
                        p,
                    },
                )
            },
        );
    }
}

/// The alignment losses of five sentence pairs (ten rows, width 37: off
/// every tile) and their gradients, against the reference: the cosine, the
/// contrastive loss at two temperatures, and the head's symmetric KL (on
/// three labels' logits and on 37), with pairs weighted unevenly and one
/// pair masked out (its rows must get a zero gradient, the others'
/// softmaxes must leave it out).
#[test]
fn alignment_loss_and_its_gradient() {
    let pairs = 5;
    let losses = [
        (AlignmentLoss::Cosine, 37),
        (AlignmentLoss::Contrastive { temperature: 0.05 }, 37),
        (AlignmentLoss::Contrastive { temperature: 1.0 }, 37),
        (AlignmentLoss::SymmetricKl, 3),
        (AlignmentLoss::SymmetricKl, 37),
    ];
    for (loss, width) in losses {
        for backward in [false, true] {
            let label = format!("alignment {loss:?} width {width} backward {backward}");
            let mut random = Random::fresh();
            let seed = random.0;
            let mut g = Graph::new(2 * pairs, 3);
            let x = weight(&mut g, &mut random, "x", &[2 * pairs, width]);
            let example_mask = g.input(Input::ExampleMask);
            let op = if backward {
                Op::AlignmentBackward {
                    x,
                    example_mask,
                    loss,
                }
            } else {
                Op::Alignment {
                    x,
                    example_mask,
                    loss,
                }
            };
            let out = g.op("loss", op);
            g.mark_output("out", out);
            let inputs = inputs_for(&g, &mut random, 29);
            let mut training = training_inputs_for(&g, &mut random);
            // Pair 1 is not a pair; pair 3 weighs half.
            training.example_mask[..pairs].copy_from_slice(&[1.0, 0.0, 1.0, 0.5, 1.0]);
            let error = gpu_vs_reference(&g, &inputs, &training, &CodegenOptions::default());
            eprintln!("{label}: relative error {error:.2e}");
            assert!(
                error < TOLERANCE,
                "{label}: relative error {error:e} (seed {seed})"
            );
            if backward {
                let reference = &run_in::<f64>(&g, &inputs, &training).unwrap()["out"].data;
                let masked = [width..2 * width, (pairs + 1) * width..(pairs + 2) * width];
                for rows in masked {
                    assert!(
                        reference[rows].iter().all(|&v| v == 0.0),
                        "{label}: masked pair"
                    );
                }
            }
        }
    }
}

/// The gradient of a gather: ids repeat (35 tokens over 29 rows), each
/// row the sum of its tokens' rows; rows no token picked are zero, also on
/// a second run with other ids on the same buffers (where the first run
/// left sums in rows the second does not touch).
#[test]
fn gather_backward_sums_rows_by_id() {
    let (batch, seq, rows, width) = (5, 7, 29, 13);
    let mut random = Random::fresh();
    let seed = random.0;
    let mut g = Graph::new(batch, seq);
    let dy = weight(&mut g, &mut random, "dy", &[batch * seq, width]);
    let ids = g.input(Input::InputIds);
    let table_gradient = g.op("dtable", Op::GatherBackward { dy, ids, rows });
    g.mark_output("dtable", table_gradient);
    let compiled = lower(&g, &CodegenOptions::default()).unwrap();
    let executor = pollster::block_on(Executor::load(gpu(), compiled.program.clone(), |n| {
        compiled.weight(n)
    }))
    .unwrap();
    for vocab in [rows as u32, 4] {
        let inputs = inputs_for(&g, &mut random, vocab);
        let on_gpu = pollster::block_on(executor.run(gpu(), &inputs)).unwrap();
        let on_cpu = reference::run(&g, &inputs).unwrap();
        let (a, e) = (&on_gpu["dtable"].data, &on_cpu["dtable"].data);
        let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        let e64: Vec<f64> = e.iter().map(|&v| v as f64).collect();
        let error = relative_error(&a64, &e64);
        eprintln!("gather backward, ids below {vocab}: relative error {error:.2e}");
        assert!(error < TOLERANCE, "relative error {error:e} (seed {seed})");
        let untouched = (0..rows as u32).filter(|r| !inputs.input_ids.contains(r));
        for row in untouched {
            let row = row as usize;
            assert!(
                a[row * width..(row + 1) * width].iter().all(|&v| v == 0.0),
                "row {row}, which no token picked, is not zero (seed {seed})"
            );
        }
    }
}

/// A table's gradient in a train step: the gather's gradient added, one
/// dispatch a part, straight into the parameter's gradient buffer split by
/// rows (a 4,000-byte binding limit splits 300 rows x 13 into parts of 76
/// rows). Over two runs with other ids (the second all in the first part,
/// every id repeated), each part holds the sum of both runs' row sums
/// (the reference's), and rows no token picked stay zero.
#[test]
fn gather_backward_adds_into_a_gradient_split_by_rows() {
    use xltc::codegen::lower_train_step;
    use xltc::passes::gradient_name;
    use xltc_runtime::program::BufferRole;

    let (batch, seq, rows, width) = (5, 7, 300, 13);
    let mut random = Random::fresh();
    let seed = random.0;
    let mut g = Graph::new(batch, seq);
    g.weight("table", vec![rows, width], vec![0.0; rows * width].into());
    let dy = weight(&mut g, &mut random, "dy", &[batch * seq, width]);
    let ids = g.input(Input::InputIds);
    let table_gradient = g.op("dtable", Op::GatherBackward { dy, ids, rows });
    g.mark_output(&gradient_name("table"), table_gradient);
    let options = CodegenOptions {
        max_binding_bytes: 4_000,
        ..CodegenOptions::default()
    };
    let compiled = lower_train_step(&g, &options).unwrap();
    let mut parts: Vec<(usize, usize, usize)> = compiled
        .program
        .buffers
        .iter()
        .enumerate()
        .filter_map(|(b, spec)| match &spec.role {
            BufferRole::Gradient(slice) => Some((slice.first, slice.count, b)),
            _ => None,
        })
        .collect();
    parts.sort();
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!(parts[3], (3 * 76 * width, 72 * width, parts[3].2));
    let executor = pollster::block_on(Executor::load(gpu(), compiled.program.clone(), |n| {
        compiled.weight(n)
    }))
    .unwrap();
    let mut expected = vec![0.0f64; rows * width];
    let mut picked = vec![false; rows];
    for vocab in [rows as u32, 4] {
        let inputs = inputs_for(&g, &mut random, vocab);
        pollster::block_on(executor.run(gpu(), &inputs)).unwrap();
        let on_cpu = reference::run(&g, &inputs).unwrap();
        for (e, v) in expected
            .iter_mut()
            .zip(&on_cpu[&gradient_name("table")].data)
        {
            *e += *v as f64;
        }
        for &id in &inputs.input_ids {
            picked[id as usize] = true;
        }
    }
    let buffers: Vec<usize> = parts.iter().map(|p| p.2).collect();
    let on_gpu = pollster::block_on(executor.read_buffers(gpu(), &buffers))
        .unwrap()
        .concat();
    let ours: Vec<f64> = on_gpu.iter().map(|&v| v as f64).collect();
    let error = relative_error(&ours, &expected);
    eprintln!("gather backward into 4 parts, two runs: relative error {error:.2e}");
    assert!(error < TOLERANCE, "relative error {error:e} (seed {seed})");
    for row in (0..rows).filter(|&r| !picked[r]) {
        assert!(
            on_gpu[row * width..(row + 1) * width]
                .iter()
                .all(|&v| v == 0.0),
            "row {row}, which no token picked, is not zero (seed {seed})"
        );
    }
}

#[test]
fn fused_linear_with_and_without_gelu() {
    for (m, n, k, gelu) in [
        (70, 37, 45, false),
        (33, 130, 17, true),
        (5, 1536, 384, true),
    ] {
        let linear = linear_graph(m, n, k, gelu);
        check_op(&format!("linear {m}x{n}x{k} gelu {gelu}"), 1, 1, linear);
    }
}

#[test]
fn fused_attention_with_padding() {
    for (batch, seq, heads, head_dim) in
        [(3, 7, 3, 5), (2, 33, 2, 12), (1, 1, 1, 3), (2, 130, 2, 64)]
    {
        let width = heads * head_dim;
        check_op(
            &format!("fused attention b{batch} s{seq} h{heads} d{head_dim}"),
            batch,
            seq,
            |g, r| {
                let query = weight(g, r, "q", &[batch * seq, width]);
                let key = weight(g, r, "k", &[batch * seq, width]);
                let value = weight(g, r, "v", &[batch * seq, width]);
                let mask = g.input(Input::AttentionMask);
                g.op(
                    "c",
                    Op::Attention {
                        query,
                        key,
                        value,
                        mask,
                        heads,
                        packed: false,
                    },
                )
            },
        );
    }
}

/// Q, K and V in one buffer, as the fused projection leaves them.
#[test]
fn packed_attention_after_one_qkv_gemm() {
    for (batch, seq, heads, head_dim) in [(3, 7, 3, 5), (2, 33, 2, 12)] {
        let width = heads * head_dim;
        check_op(
            &format!("qkv gemm + packed attention b{batch} s{seq} h{heads} d{head_dim}"),
            batch,
            seq,
            |g, r| {
                let x = weight(g, r, "x", &[batch * seq, 19]);
                let parts = ["q", "k", "v"].map(|p| weight(g, r, &format!("{p}.w"), &[width, 19]));
                let biases = ["q", "k", "v"].map(|p| weight(g, r, &format!("{p}.b"), &[width]));
                let w = g.concat("qkv.w", parts.to_vec(), vec![3 * width, 19]);
                let bias = g.concat("qkv.b", biases.to_vec(), vec![3 * width]);
                let qkv = g.op(
                    "qkv",
                    Op::Linear {
                        x,
                        weight: w,
                        bias,
                        gelu: false,
                    },
                );
                let mask = g.input(Input::AttentionMask);
                g.op(
                    "c",
                    Op::Attention {
                        query: qkv,
                        key: qkv,
                        value: qkv,
                        mask,
                        heads,
                        packed: true,
                    },
                )
            },
        );
    }
}

/// The fused embedding layer reading tables, gamma and beta packed into one
/// table and the three kinds of ids packed into one buffer.
fn fused_embeddings(g: &mut Graph, r: &mut Random, width: usize) -> ValueId {
    let tokens = g.tokens();
    let words = weight(g, r, "words", &[29, width]);
    let types = weight(g, r, "types", &[2, width]);
    let positions = weight(g, r, "positions", &[tokens, width]);
    let gamma = weight(g, r, "gamma", &[width]);
    let beta = weight(g, r, "beta", &[width]);
    let rows = 29 + 2 + tokens + 2;
    let tables = vec![words, types, positions, gamma, beta];
    let table = g.concat("tables", tables, vec![rows, width]);
    let kinds = [Input::InputIds, Input::TokenTypeIds, Input::PositionIds];
    let ids = kinds.map(|kind| g.input(kind)).to_vec();
    let ids = g.concat("ids", ids, vec![3 * tokens]);
    let op = Op::Embeddings {
        table,
        ids,
        words: 29,
        types: 2,
        eps: 1e-12,
    };
    g.op("e", op)
}

#[test]
fn fused_embeddings_whole_and_split_over_bindings() {
    for (batch, seq, width) in [(2, 7, 13), (3, 5, 384), (1, 3, 1001)] {
        check_op(
            &format!("embeddings b{batch} s{seq} w{width}"),
            batch,
            seq,
            |g, r| fused_embeddings(g, r, width),
        );
    }
    // 54 rows of 52 bytes under a 1200-byte limit: 3 parts of 23 rows.
    let options = CodegenOptions {
        max_binding_bytes: 1200,
        ..CodegenOptions::default()
    };
    let build = |g: &mut Graph, r: &mut Random| fused_embeddings(g, r, 13);
    let parts = check_split_table("embeddings from a split table", 3, 7, &options, build);
    assert_eq!(parts["tables"], 3);
}

/// Checks a graph whose table is split under `options`' binding limit;
/// returns the number of row parts of each split value, by name.
fn check_split_table(
    label: &str,
    batch: usize,
    seq: usize,
    options: &CodegenOptions,
    build: impl Fn(&mut Graph, &mut Random) -> ValueId,
) -> std::collections::HashMap<String, usize> {
    check_op_with(label, batch, seq, options, &build);
    let mut g = Graph::new(batch, seq);
    let out = build(&mut g, &mut Random::fresh());
    g.mark_output("out", out);
    let program = lower(&g, options).unwrap().program;
    let mut parts = std::collections::HashMap::new();
    for buffer in &program.buffers {
        if let Some((name, _)) = buffer.name.split_once("[rows ") {
            *parts.entry(name.to_owned()).or_default() += 1;
        }
    }
    parts
}

#[test]
fn fused_linear_residual_and_layer_norm() {
    for (m, n, k) in [(13, 37, 45), (9, 384, 70), (17, 200, 33), (3, 1001, 19)] {
        check_op(&format!("linear_norm {m}x{n}x{k}"), 1, 1, |g, r| {
            let x = weight(g, r, "x", &[m, k]);
            let w = weight(g, r, "w", &[n, k]);
            let bias = weight(g, r, "bias", &[n]);
            let residual = weight(g, r, "residual", &[m, n]);
            let gamma = weight(g, r, "gamma", &[n]);
            let beta = weight(g, r, "beta", &[n]);
            let op = Op::LinearNorm {
                x,
                weight: w,
                bias,
                residual,
                gamma,
                beta,
                eps: 1e-5,
            };
            g.op("y", op)
        });
    }
}

#[test]
fn fused_classification_head() {
    for (batch, seq, width, labels) in [(3, 5, 37, 3), (2, 9, 300, 2), (1, 1, 1, 1)] {
        check_op(
            &format!("head b{batch} s{seq} w{width} labels {labels}"),
            batch,
            seq,
            |g, r| {
                let x = weight(g, r, "x", &[batch * seq, width]);
                let dense_weight = weight(g, r, "dense.w", &[width, width]);
                let dense_bias = weight(g, r, "dense.b", &[width]);
                let out_weight = weight(g, r, "out.w", &[labels, width]);
                let out_bias = weight(g, r, "out.b", &[labels]);
                let op = Op::Head {
                    x,
                    dense_weight,
                    dense_bias,
                    out_weight,
                    out_bias,
                };
                g.op("logits", op)
            },
        );
    }
}

#[test]
fn layer_norm_on_narrow_and_wide_rows() {
    for (rows, width) in [(13, 37), (5, 384), (2, 1001)] {
        check_op(&format!("layer_norm {rows}x{width}"), 1, 1, |g, r| {
            let x = weight(g, r, "x", &[rows, width]);
            let gamma = weight(g, r, "gamma", &[width]);
            let beta = weight(g, r, "beta", &[width]);
            g.op(
                "y",
                Op::LayerNorm {
                    x,
                    gamma,
                    beta,
                    eps: 1e-5,
                },
            )
        });
    }
}

#[test]
fn attention_with_padding() {
    // Head widths that are multiples of 4 run the blocked kernels
    // (attention_dots, attention_sums; checked), the others one element a
    // thread; sequences off the blocks of 4.
    for (batch, seq, heads, head_dim) in
        [(3, 7, 3, 5), (2, 33, 2, 12), (1, 1, 1, 3), (1, 130, 2, 64)]
    {
        let width = heads * head_dim;
        let attention = |g: &mut Graph, r: &mut Random| {
            let query = weight(g, r, "q", &[batch * seq, width]);
            let key = weight(g, r, "k", &[batch * seq, width]);
            let value = weight(g, r, "v", &[batch * seq, width]);
            let mask = g.input(Input::AttentionMask);
            let scores = g.op("s", Op::AttentionScores { query, key, heads });
            let probs = g.op("p", Op::MaskedSoftmax { scores, mask });
            g.op(
                "c",
                Op::AttentionContext {
                    probs,
                    value,
                    heads,
                },
            )
        };
        let mut graph = Graph::new(batch, seq);
        let out = attention(&mut graph, &mut Random::fresh());
        graph.mark_output("c", out);
        let expected = if head_dim % 4 == 0 {
            ["attention_dots", "masked_softmax", "attention_sums"]
        } else {
            ["attention_scores", "masked_softmax", "attention_context"]
        };
        assert_eq!(graph_families(&graph), expected);
        check_op(
            &format!("attention b{batch} s{seq} h{heads} d{head_dim}"),
            batch,
            seq,
            attention,
        );
    }
}

#[test]
fn pooling_and_row_normalisation() {
    let (batch, seq, width) = (4, 9, 37);
    check_op("first_token", batch, seq, |g, r| {
        let x = weight(g, r, "x", &[batch * seq, width]);
        g.op("y", Op::FirstToken { x })
    });
    check_op("mean_pool + l2_normalize", batch, seq, |g, r| {
        let x = weight(g, r, "x", &[batch * seq, width]);
        let mask = g.input(Input::AttentionMask);
        let pooled = g.op("p", Op::MeanPool { x, mask });
        g.op("n", Op::L2Normalize { x: pooled })
    });
    check_op("softmax", 1, 1, |g, r| {
        let x = weight(g, r, "x", &[11, 3]);
        g.op("y", Op::Softmax { x })
    });
}

/// A whole model on the GPU against the Hugging Face fixture, fused (as
/// `xltc compile` emits it) or one kernel an op.
fn check_model(name: &str) {
    check_model_graph(name, true);
}

fn check_model_graph(name: &str, fused: bool) {
    let golden = Golden::read(name);
    let model = Model::load(&model_dir(name)).unwrap();
    let output = match model.output {
        ModelOutput::Classification => "logits",
        ModelOutput::SentenceEmbedding { .. } => "sentence_embedding",
    };
    for batch in ["singles", "pairs"] {
        let ids = golden.array(&format!("{batch}.input_ids"));
        let (rows, seq) = (ids.shape[0], ids.shape[1]);
        let mask = &golden.array(&format!("{batch}.attention_mask")).data;
        let types = &golden.array(&format!("{batch}.token_type_ids")).data;
        let encodings: Vec<xltc_runtime::Encoding> = (0..rows)
            .map(|r| {
                let len = mask[r * seq..(r + 1) * seq]
                    .iter()
                    .filter(|&&m| m > 0.0)
                    .count();
                let take = |v: &[f64]| {
                    v[r * seq..r * seq + len]
                        .iter()
                        .map(|&x| x as u32)
                        .collect()
                };
                xltc_runtime::Encoding {
                    ids: take(&ids.data),
                    type_ids: take(types),
                }
            })
            .collect();
        let inputs = ModelInputs::pad(
            &encodings,
            seq,
            model.config.pad_token_id,
            model.position_scheme(),
        );
        let mut graph = model.graph(rows, seq);
        if fused {
            graph = fuse(&graph);
        }
        let compiled = lower(&graph, &CodegenOptions::default()).unwrap();
        let gpu = gpu();
        let executor = pollster::block_on(Executor::load(gpu, compiled.program.clone(), |n| {
            compiled.weight(n)
        }))
        .unwrap();
        let outputs = pollster::block_on(executor.run(gpu, &inputs)).unwrap();
        let ours: Vec<f64> = outputs[output].data.iter().map(|&v| v as f64).collect();
        let error = relative_error(&ours, &golden.array(&format!("{batch}.output")).data);
        eprintln!("gpu {name} {batch} (fused {fused}): relative error of {output} {error:.2e}");
        assert!(
            error < TOLERANCE,
            "{name} {batch}: {output} off by {error:e}"
        );
    }
}

#[test]
fn tiny_bert_on_the_gpu_matches_hugging_face() {
    check_model("tiny-bert");
}

#[test]
fn tiny_xlmr_on_the_gpu_matches_hugging_face() {
    check_model("tiny-xlmr");
}

#[test]
fn unfused_tiny_models_on_the_gpu_match_hugging_face() {
    check_model_graph("tiny-bert", false);
    check_model_graph("tiny-xlmr", false);
}

#[test]
fn all_minilm_l6_v2_on_the_gpu_matches_hugging_face() {
    check_model("all-minilm-l6-v2");
}

/// A table past the binding limit is split by rows over several bindings;
/// here a limit of 400 bytes splits a 29 x 13 table into 5 parts of 7 rows.
#[test]
fn gather_from_a_table_split_over_bindings() {
    let options = CodegenOptions {
        max_binding_bytes: 400,
        ..CodegenOptions::default()
    };
    let build = |g: &mut Graph, r: &mut Random| {
        let table = weight(g, r, "table", &[29, 13]);
        let ids = g.input(Input::InputIds);
        g.op("e", Op::Gather { table, ids })
    };
    let parts = check_split_table("gather from a split table", 1, 7, &options, build);
    assert_eq!(parts["table"], 5);
}

/// Only gather tables may be split: any other value past the limit is an
/// error that names it.
#[test]
fn a_value_past_the_binding_limit_is_named() {
    let mut g = Graph::new(1, 1);
    let x = g.weight("x", vec![2, 300], vec![0.0; 600].into());
    let w = g.weight(
        "encoder.layer.0.output.dense.weight",
        vec![300, 300],
        vec![0.0; 90_000].into(),
    );
    let y = g.op("y", Op::MatMul { x, weight: w });
    g.mark_output("y", y);
    let error = lower(
        &g,
        &CodegenOptions {
            max_binding_bytes: 100_000,
            ..CodegenOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(error, CodegenError::TooLarge { .. }));
    assert!(
        error
            .to_string()
            .contains("encoder.layer.0.output.dense.weight"),
        "{error}"
    );
}

/// The executor, too, refuses a buffer past the adapter's own limit, by name,
/// before it allocates anything.
#[test]
fn the_executor_refuses_a_buffer_past_the_adapter_limit() {
    use xltc_runtime::program::{BufferRole, BufferSpec};
    let limit = gpu().adapter.max_storage_binding_bytes;
    let program = xltc_runtime::Program {
        batch: 1,
        seq: 1,
        buffers: vec![BufferSpec {
            name: "huge".into(),
            bytes: limit + 4,
            role: BufferRole::Activation,
        }],
        ..Default::default()
    };
    let result = pollster::block_on(Executor::load(gpu(), program, |_| None));
    let message = result.err().expect("refused").to_string();
    assert!(
        message.contains("huge") && message.contains("binding limit"),
        "{message}"
    );
}

#[test]
fn multilingual_e5_small_on_the_gpu_matches_hugging_face() {
    check_model("multilingual-e5-small");
}

/// Ids past a table are refused before the GPU runs, naming the table.
#[test]
fn ids_past_the_table_are_refused() {
    let mut g = Graph::new(1, 3);
    let table = g.weight(
        "embeddings.word_embeddings.weight",
        vec![5, 2],
        vec![0.0; 10].into(),
    );
    let ids = g.input(Input::InputIds);
    let out = g.op("e", Op::Gather { table, ids });
    g.mark_output("out", out);
    let compiled = lower(&g, &CodegenOptions::default()).unwrap();
    let executor = pollster::block_on(Executor::load(gpu(), compiled.program.clone(), |n| {
        compiled.weight(n)
    }))
    .unwrap();
    let mut inputs = inputs_for(&g, &mut Random::fresh(), 5);
    inputs.input_ids[2] = 5;
    let message = pollster::block_on(executor.run(gpu(), &inputs))
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("id 5 is past the 5 rows of embeddings.word_embeddings.weight"),
        "{message}"
    );
}

/// The training kernels codegen binds itself, on fresh random inputs with
/// sizes off the workgroups (1, 255, 1001 and 70,001 elements): a train
/// step's gradients added into the parameters' gradient buffers (run twice:
/// the sums of two micro-batches), then the optimizer program (each
/// gradient's squares, the global norm and the clipping factor, AdamW with
/// and without weight decay) against the reference's `clip_by_global_norm`
/// and `adamw_step` in f64: the norm, every parameter's update (to 1e-4 of lr
/// at least) and both moments within 1e-4; every gradient zeroed for the next step.
#[test]
fn gradient_sums_and_the_optimizer_against_the_reference() {
    use xltc::codegen::{lower_optimizer, lower_train_step, optimizer_input, OPTIMIZER_INPUT};
    use xltc::passes::gradient_name;
    use xltc::reference::{adamw_step, clip_by_global_norm, decays, AdamW};
    use xltc_runtime::program::BufferRole;
    use xltc_runtime::WeightBuffers;

    let mut random = Random::fresh();
    let seed = random.0;
    let sizes = [
        ("w.weight", 1usize),
        ("b.bias", 255),
        ("x.weight", 1001),
        ("y.bias", 70_001),
    ];
    // A "train step": each parameter's gradient is a sum of two random values.
    let mut g = Graph::new(1, 1);
    let mut expected_sums = Vec::new();
    let mut params = Vec::new();
    for (name, count) in sizes {
        let param = random.floats(count, 1.0);
        g.weight(name, vec![count], param.clone().into());
        params.push(param);
        let a = weight(&mut g, &mut random, &format!("{name}.a"), &[count]);
        let b = weight(&mut g, &mut random, &format!("{name}.b"), &[count]);
        let gradient = g.op(format!("{name}.g"), Op::Add { a, b });
        g.mark_output(&gradient_name(name), gradient);
        let sum = reference::run(&g, &inputs_for(&g, &mut random, 1)).unwrap();
        let doubled: Vec<f64> = sum[&gradient_name(name)]
            .data
            .iter()
            .map(|&v| 2.0 * v as f64)
            .collect();
        expected_sums.push(doubled);
    }
    let step = lower_train_step(&g, &CodegenOptions::default()).unwrap();
    let parameters: Vec<(String, Vec<usize>)> = sizes
        .iter()
        .map(|(n, c)| (n.to_string(), vec![*c]))
        .collect();
    let adam = AdamW {
        weight_decay: 0.1,
        ..AdamW::default()
    };
    let optimizer = lower_optimizer(&parameters, &adam, &CodegenOptions::default()).unwrap();
    let shared = WeightBuffers::default();
    let load = |program| {
        pollster::block_on(Executor::load_sharing(gpu(), program, &shared, |n| {
            step.weight(n)
        }))
        .unwrap()
    };
    let (train_step, optimizer) = (load(step.program.clone()), load(optimizer));
    let inputs = inputs_for(&g, &mut random, 1);
    for _ in 0..2 {
        pollster::block_on(train_step.run(gpu(), &inputs)).unwrap();
    }
    let buffers = |role: &dyn Fn(&str) -> BufferRole| -> Vec<usize> {
        let program = optimizer.program();
        sizes
            .iter()
            .map(|(n, _)| {
                (0..program.buffers.len())
                    .find(|&b| program.buffers[b].role == role(n))
                    .unwrap()
            })
            .collect()
    };
    let whole = |n: &str| xltc_runtime::program::WeightSlice {
        name: n.to_owned(),
        first: 0,
        count: sizes.iter().find(|s| s.0 == n).unwrap().1,
    };
    let gradients = buffers(&|n| BufferRole::Gradient(whole(n)));
    let moment = |order| {
        buffers(&move |n| BufferRole::Moment {
            of: whole(n),
            order,
        })
    };
    let read = |ids: &[usize]| pollster::block_on(optimizer.read_buffers(gpu(), ids)).unwrap();
    let sums = read(&gradients);
    // Relative to the largest expected value, or to `floor` where that is
    // larger: a one-element tensor's value can be far below the scale its
    // f32 rounding comes from.
    let close_above = |label: &str, ours: &[f32], theirs: &[f64], floor: f64| {
        let scale = theirs.iter().fold(floor, |m, v| m.max(v.abs()));
        let error = ours
            .iter()
            .zip(theirs)
            .fold(0.0f64, |m, (&a, b)| m.max((a as f64 - b).abs()))
            / scale;
        eprintln!("{label}: relative error {error:.2e}");
        assert!(
            error < TOLERANCE,
            "{label}: relative error {error:e} (seed {seed})"
        );
    };
    let close = |label: &str, ours: &[f32], theirs: &[f64]| close_above(label, ours, theirs, 0.0);
    for (((name, _), ours), theirs) in sizes.iter().zip(&sums).zip(&expected_sums) {
        close(&format!("gradient sum of {name}"), ours, theirs);
    }
    // Moments from an earlier step (v must be positive), then step 3.
    let (m1, m2) = (moment(1), moment(2));
    let mut first: Vec<Vec<f32>> = Vec::new();
    let mut second: Vec<Vec<f32>> = Vec::new();
    for (i, (_, count)) in sizes.iter().enumerate() {
        first.push(random.floats(*count, 0.01));
        second.push(
            random
                .floats(*count, 1e-4)
                .iter()
                .map(|v| v.abs())
                .collect(),
        );
        optimizer.write_buffer(gpu(), m1[i], &first[i]).unwrap();
        optimizer.write_buffer(gpu(), m2[i], &second[i]).unwrap();
    }
    let (lr, gradient_scale, max_norm) = (1e-2, 0.5, 1.0);
    let scalars = optimizer_input(&adam, 3, lr, gradient_scale, max_norm);
    let input = |n: &str| (n == OPTIMIZER_INPUT).then(|| bytemuck::cast_slice(&scalars[..]));
    let out = pollster::block_on(optimizer.run_named(gpu(), input)).unwrap();
    let mut grads: Vec<Vec<f64>> = sums
        .iter()
        .map(|s| s.iter().map(|&v| v as f64 * gradient_scale).collect())
        .collect();
    let mut slices: Vec<&mut [f64]> = grads.iter_mut().map(|g| &mut g[..]).collect();
    let norm = clip_by_global_norm(&mut slices, max_norm);
    assert!(
        norm > max_norm,
        "clipping must act (norm {norm}, seed {seed})"
    );
    close("gradient norm", &out["gradient_norm"].data, &[norm]);
    let after = read(&buffers(&|n| BufferRole::Weight(vec![whole(n)])));
    let (after_m, after_v) = (read(&m1), read(&m2));
    for (i, (name, _)) in sizes.iter().enumerate() {
        let mut p: Vec<f64> = params[i].iter().map(|&v| v as f64).collect();
        let mut m: Vec<f64> = first[i].iter().map(|&v| v as f64).collect();
        let mut v: Vec<f64> = second[i].iter().map(|&v| v as f64).collect();
        adamw_step(
            &mut p,
            &grads[i],
            &mut m,
            &mut v,
            3,
            lr,
            decays(name),
            &adam,
        );
        // The update itself (about lr), not the parameter (about 1); its f32
        // subtraction after - before carries half an ulp of 1 (6e-8), so it
        // is held to 1e-4 of lr at least (one element's update can be far
        // below lr). The first moment, 0.9 m + 0.1 g, to 1e-4 of its
        // gradient term at least (the two can cancel).
        let ours: Vec<f32> = after[i]
            .iter()
            .zip(&params[i])
            .map(|(a, b)| a - b)
            .collect();
        let theirs: Vec<f64> = p
            .iter()
            .zip(&params[i])
            .map(|(a, &b)| a - b as f64)
            .collect();
        close_above(&format!("{name}'s AdamW update"), &ours, &theirs, lr);
        let term = grads[i].iter().fold(0.0f64, |t, g| t.max(0.1 * g.abs()));
        close_above(&format!("{name} first moment"), &after_m[i], &m, term);
        close(&format!("{name} second moment"), &after_v[i], &v);
    }
    assert!(
        read(&gradients).iter().flatten().all(|&g| g == 0.0),
        "the optimizer step left gradients for the next step"
    );
}
