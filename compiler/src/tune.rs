//! Ahead-of-time tuning (`xltc compile --tune`): every GEMM the programs
//! will run is tried with each kernel that can compute it (the tiled one,
//! the lane kernel, and its subgroup form where the adapter has subgroups
//! of 8 lanes or more) on the adapter present, on random operands of its
//! exact shape; the fastest whose result is within the tolerance of the CPU
//! reference is the one codegen emits, and the artifact records the
//! choice, the times and the adapter. A run pays nothing: burn, by
//! contrast, tunes at the first call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use xltc_runtime::artifact::{FusionTrial, GemmTrial, TunedGemm, Tuning};
use xltc_runtime::{Encoding, Executor, Gpu, GpuError, ModelInputs, PositionScheme, SplitMix64};

use crate::codegen::{gemm_of, lower, CodegenError, CodegenOptions, GemmKernel, GemmKey};
use crate::frontend::Model;
use crate::ir::{Graph, Op, Source};
use crate::passes::{fuse_with, Fusions};
use crate::reference::{self, relative_error, ReferenceError};

/// A kernel's result may differ from the reference by this much (max |gpu -
/// reference| / max |reference|) and still be chosen.
pub const TOLERANCE: f64 = 1e-4;
/// Timed runs of each kernel, after one warm-up run.
const RUNS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error("tuning {what}: {source}")]
    Codegen {
        what: String,
        #[source]
        source: CodegenError,
    },
    #[error("tuning {what}: {source}")]
    Gpu {
        what: String,
        #[source]
        source: GpuError,
    },
    #[error("tuning {what}: {source}")]
    Reference {
        what: String,
        #[source]
        source: ReferenceError,
    },
    #[error("tuning {what}: no choice came within {TOLERANCE:e} of the reference ({errors})")]
    NoExactKernel { what: String, errors: String },
}

/// Every GEMM of `graphs` that more than one kernel can compute.
pub fn gemms(graphs: &[Graph]) -> Vec<GemmKey> {
    let mut keys: Vec<GemmKey> = graphs
        .iter()
        .flat_map(|g| {
            g.values()
                .filter_map(|(_, v)| match &v.source {
                    Source::Op(op) => gemm_of(g, op).map(|(key, _, _)| key),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .filter(GemmKey::suits_lanes)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The GEMM kernels `gpu` can run: the subgroup lane kernel only where its
/// subgroups have the lanes it broadcasts from.
pub fn candidates(gpu: &Gpu) -> Vec<GemmKernel> {
    let mut kernels = vec![GemmKernel::Lanes, GemmKernel::Tiled];
    if gpu.adapter.subgroup_min_size >= 8 {
        kernels.push(GemmKernel::LanesSubgroup);
    }
    kernels
}

/// Tries every candidate kernel for each of `keys` on `gpu`: the choices for
/// [`CodegenOptions::tuned_gemms`] and the record for the artifact.
/// `progress` hears (done, total) after each GEMM.
pub fn tune(
    gpu: &Gpu,
    keys: &[GemmKey],
    options: &CodegenOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<(BTreeMap<GemmKey, GemmKernel>, Tuning), TuneError> {
    let mut choices = BTreeMap::new();
    let mut gemms = Vec::new();
    let kernels = candidates(gpu);
    for (done, key) in keys.iter().enumerate() {
        let (kernel, record) = tune_one(gpu, *key, &kernels, options)?;
        choices.insert(*key, kernel);
        gemms.push(record);
        progress(done + 1, keys.len());
    }
    let tuning = Tuning {
        adapter: gpu.adapter.to_string(),
        gemms,
        fusions: Vec::new(),
    };
    Ok((choices, tuning))
}

/// `kernels` on one GEMM: the one that won, and the trials.
fn tune_one(
    gpu: &Gpu,
    key: GemmKey,
    kernels: &[GemmKernel],
    options: &CodegenOptions,
) -> Result<(GemmKernel, TunedGemm), TuneError> {
    let name = describe(key);
    let graph = probe(key);
    let inputs = ModelInputs::pad(&[Encoding::default()], 1, 0, PositionScheme::FromZero);
    let expected = reference::run(&graph, &inputs).map_err(|source| TuneError::Reference {
        what: name.clone(),
        source,
    })?;
    let expected = &expected["out"].data;
    let mut trials = Vec::new();
    for &kernel in kernels {
        let mut forced = options.clone();
        forced.tuned_gemms = BTreeMap::from([(key, kernel)]);
        let (seconds, out) = time_on_gpu(gpu, &graph, &forced).map_err(|e| e.named(&name))?;
        trials.push(GemmTrial {
            kernel: kernel.name().into(),
            seconds,
            relative_error: recorded_error(&out, expected),
        });
    }
    let best = trials
        .iter()
        .filter(|t| t.relative_error <= TOLERANCE)
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .ok_or_else(|| TuneError::NoExactKernel {
            what: name.clone(),
            errors: trials
                .iter()
                .map(|t| format!("{} {:.1e}", t.kernel, t.relative_error))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let record = TunedGemm {
        shape: [key.m, key.n, key.k],
        x_transposed: key.x_transposed,
        w_transposed: key.w_transposed,
        bias: key.bias,
        gelu: key.gelu,
        kernel: best.kernel.clone(),
        trials: trials.clone(),
    };
    let chosen = GemmKernel::from_name(&best.kernel).expect("a trial names a kernel");
    Ok((chosen, record))
}

/// "1024 x 1536 x 384 (bias, GELU)" and the like, for messages.
pub fn describe(key: GemmKey) -> String {
    let mut notes = Vec::new();
    for (on, note) in [
        (key.x_transposed, "x k-major"),
        (key.w_transposed, "w k-major"),
        (key.bias, "bias"),
        (key.gelu, "GELU"),
    ] {
        if on {
            notes.push(note);
        }
    }
    let notes = match notes.is_empty() {
        true => String::new(),
        false => format!(" ({})", notes.join(", ")),
    };
    format!("GEMM {} x {} x {}{notes}", key.m, key.n, key.k)
}

/// Tries each choice of the fusions whose worth depends on the adapter
/// (attention, GEMM + residual + LayerNorm) on top of `base`, on the whole
/// forward of one probe bucket of `model` (batch 1, `seq` tokens of
/// ordinary ids): the fusions to compile with, and the trials.
pub fn tune_fusions(
    gpu: &Gpu,
    model: &Model,
    base: Fusions,
    seq: usize,
    options: &CodegenOptions,
) -> Result<(Fusions, Vec<FusionTrial>), TuneError> {
    let name = format!("the fusions of {} at 1 x {seq}", model.name);
    let named_reference = |source| TuneError::Reference {
        what: name.clone(),
        source,
    };
    let vocabulary = model.config.vocab.max(6) as u32;
    let encoding = Encoding {
        ids: (0..seq as u32)
            .map(|i| 5 + (i * 7919) % (vocabulary - 5))
            .collect(),
        type_ids: vec![0; seq],
    };
    let inputs = ModelInputs::pad(
        &[encoding],
        seq,
        model.config.pad_token_id,
        model.position_scheme(),
    );
    let output = model.prediction_output();
    let plain = model.graph(1, seq);
    let expected = reference::run(&plain, &inputs).map_err(named_reference)?;
    let expected = &expected[output].data;
    let mut trials = Vec::new();
    for (attention, linear_norm) in [(false, false), (true, false), (false, true), (true, true)] {
        let fusions = Fusions {
            attention,
            linear_norm,
            ..base
        };
        let graph = fuse_with(&plain, fusions);
        let (seconds, out) =
            time_model(gpu, &graph, options, &inputs, output).map_err(|e| e.named(&name))?;
        let on = [(attention, "attention"), (linear_norm, "linear_norm")];
        let on = on.iter().filter(|(o, _)| *o).map(|(_, n)| n.to_string());
        trials.push((
            fusions,
            FusionTrial {
                on: on.collect(),
                seconds,
                relative_error: recorded_error(&out, expected),
                chosen: false,
            },
        ));
    }
    let best = trials
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| t.relative_error <= TOLERANCE)
        .min_by(|(_, (_, a)), (_, (_, b))| a.seconds.total_cmp(&b.seconds))
        .map(|(i, _)| i)
        .ok_or_else(|| TuneError::NoExactKernel {
            what: name.clone(),
            errors: trials
                .iter()
                .map(|(_, t)| format!("[{}] {:.1e}", t.on.join(", "), t.relative_error))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    trials[best].1.chosen = true;
    let chosen = trials[best].0;
    Ok((chosen, trials.into_iter().map(|(_, t)| t).collect()))
}

/// A graph of the one op that is this GEMM, on random operands held as
/// weights, its result the output `out`.
fn probe(key: GemmKey) -> Graph {
    let mut random = SplitMix64::new(0x7475_6e65);
    let mut g = Graph::new(1, 1);
    let mut operand = |g: &mut Graph, name: &str, shape: &[usize]| {
        let data: Arc<[f32]> = (0..shape.iter().product())
            .map(|_| random.next_f64() as f32 * 2.0 - 1.0)
            .collect();
        g.weight(name, shape.to_vec(), data)
    };
    let GemmKey { m, n, k, .. } = key;
    let op = match (key.x_transposed, key.w_transposed) {
        (false, false) => {
            let x = operand(&mut g, "x", &[m, k]);
            let weight = operand(&mut g, "w", &[n, k]);
            if key.bias {
                let bias = operand(&mut g, "bias", &[n]);
                Op::Linear {
                    x,
                    weight,
                    bias,
                    gelu: key.gelu,
                }
            } else {
                Op::MatMul { x, weight }
            }
        }
        // dx [m, k'] = dy [m, n'] w [n', k']: the key's k is n'.
        (false, true) => {
            let dy = operand(&mut g, "dy", &[m, k]);
            let weight = operand(&mut g, "w", &[k, n]);
            Op::MatMulBackwardX { dy, weight }
        }
        // dw [n', k'] = dy [m', n']ᵀ x [m', k']: the key's k is m'.
        (true, _) => {
            let dy = operand(&mut g, "dy", &[k, m]);
            let x = operand(&mut g, "x", &[k, n]);
            Op::MatMulBackwardWeight { dy, x }
        }
    };
    let out = g.op("out", op);
    g.mark_output("out", out);
    g
}

/// A failure of a trial, before it is named.
enum TrialError {
    Codegen(CodegenError),
    Gpu(GpuError),
}

impl TrialError {
    fn named(self, what: &str) -> TuneError {
        let what = what.to_owned();
        match self {
            TrialError::Codegen(source) => TuneError::Codegen { what, source },
            TrialError::Gpu(source) => TuneError::Gpu { what, source },
        }
    }
}

/// The median seconds of a run of `graph` lowered with `options` (submit
/// and read back), and its output.
fn time_on_gpu(
    gpu: &Gpu,
    graph: &Graph,
    options: &CodegenOptions,
) -> Result<(f64, Vec<f32>), TrialError> {
    let inputs = ModelInputs::pad(&[Encoding::default()], 1, 0, PositionScheme::FromZero);
    time_model(gpu, graph, options, &inputs, "out")
}

/// [`time_on_gpu`] for a graph that reads `inputs`, giving output `output`.
fn time_model(
    gpu: &Gpu,
    graph: &Graph,
    options: &CodegenOptions,
    inputs: &ModelInputs,
    output: &str,
) -> Result<(f64, Vec<f32>), TrialError> {
    let compiled = lower(graph, options).map_err(TrialError::Codegen)?;
    let program = compiled.program.clone();
    let load = Executor::load(gpu, program, |n| compiled.weight(n));
    let executor = pollster::block_on(load).map_err(TrialError::Gpu)?;
    let run = || pollster::block_on(executor.run(gpu, inputs)).map_err(TrialError::Gpu);
    let mut out = run()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        out = run()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let data = out.remove(output).expect("the graph's output").data;
    Ok((times[RUNS / 2], data))
}

/// A trial's error as the artifact's manifest records it: JSON has no
/// infinity (serde_json would write null, and the artifact would not load
/// again), so a kernel that wrote NaN or infinity is recorded as f64::MAX,
/// as far from the tolerance as an error goes.
fn recorded_error(out: &[f32], expected: &[f32]) -> f64 {
    relative_error(out, expected).min(f64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families(graph: &Graph, options: &CodegenOptions) -> Vec<String> {
        let program = lower(graph, options).unwrap().program;
        let names = program.kernels.iter();
        names
            .map(|k| k.name.split('[').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_tuned_choice_is_the_kernel_codegen_emits() {
        let keys = [
            GemmKey {
                bias: true,
                gelu: true,
                ..GemmKey::new(20, 12, 8)
            },
            GemmKey {
                w_transposed: true,
                ..GemmKey::new(20, 12, 8)
            },
            GemmKey {
                x_transposed: true,
                w_transposed: true,
                ..GemmKey::new(20, 12, 8)
            },
        ];
        for key in keys {
            let graph = probe(key);
            assert_eq!(gemms(std::slice::from_ref(&graph)), vec![key]);
            for kernel in [
                GemmKernel::Lanes,
                GemmKernel::Tiled,
                GemmKernel::LanesSubgroup,
            ] {
                let options = CodegenOptions {
                    tuned_gemms: BTreeMap::from([(key, kernel)]),
                    ..CodegenOptions::default()
                };
                assert_eq!(families(&graph, &options), vec![kernel.name()], "{key:?}");
                let program = lower(&graph, &options).unwrap().program;
                let needs = program.kernels[0].min_subgroup_size;
                assert_eq!(needs, u32::from(kernel == GemmKernel::LanesSubgroup) * 8);
            }
        }
    }

    /// A program with the subgroup GEMM runs only where subgroups have 8
    /// lanes or more; a kernel that broadcasts without saying how many lanes
    /// it needs is refused everywhere.
    #[test]
    fn the_subgroup_gemm_is_refused_where_subgroups_are_too_small() {
        use xltc_runtime::ProgramLimits;
        let options = CodegenOptions {
            gemm: GemmKernel::LanesSubgroup,
            ..CodegenOptions::default()
        };
        let mut program = lower(&probe(GemmKey::new(20, 12, 8)), &options)
            .unwrap()
            .program;
        let with = |subgroup_min_size| ProgramLimits {
            subgroup_min_size,
            ..ProgramLimits::none()
        };
        program.check(&with(8)).unwrap();
        program.check(&with(32)).unwrap();
        for (lanes, has) in [(0, "no subgroup operations"), (4, "subgroups of 4 lanes")] {
            let error = program.check(&with(lanes)).unwrap_err().to_string();
            assert!(
                error.contains("matmul_lanes_subgroup")
                    && error.contains("at least 8 lanes")
                    && error.contains(has),
                "{error}"
            );
        }
        program.kernels[0].min_subgroup_size = 0;
        let error = program.check(&with(8)).unwrap_err().to_string();
        assert!(error.contains("does not say how many lanes"), "{error}");
    }

    #[test]
    fn only_gemms_both_kernels_can_compute_are_tuned() {
        // k = 6 is no whole number of vec4s: the tiled kernel alone.
        let graph = probe(GemmKey::new(5, 7, 6));
        assert!(gemms(&[graph]).is_empty());
    }
}
