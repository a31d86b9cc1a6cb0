//! Training against PyTorch: the loss, every parameter's gradient and the
//! gradient with respect to the word embeddings of the tiny BERT and XLM-R
//! classifiers, on a batch of six multilingual pairs with a perturbation on
//! the word embeddings, from the autodiff pass run by the CPU reference in
//! f64 and in f32, against transformers' own model classes in float64
//! (tests/fixtures/training, made by tests/golden/make_training_reference.py);
//! the same training graph compiled to WGSL and run on the GPU, against
//! PyTorch and against the reference, twice for bit-identical gradients.

mod common;

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};
use xltc::codegen::{lower, CodegenOptions};
use xltc::frontend::Model;
use xltc::ir::{Op, Source};
use xltc::passes::{autodiff, fuse_with, gradient_name, Fusions, WORD_EMBEDDING_GRADIENT};
use xltc::reference::{run_in, Real, Tensor, TrainingInputs};
use xltc_runtime::{Encoding, Executor, ModelInputs};

use common::{fixtures, gpu, model_dir};

/// The fixture's tensors, every dtype read as f64.
fn read_fixture(name: &str) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let path = fixtures()
        .join("training")
        .join(format!("{name}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(n, v)| {
            let data: Vec<f64> = match v.dtype() {
                Dtype::F64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                other => panic!("{n}: unexpected dtype {other:?}"),
            };
            (n, (v.shape().to_vec(), data))
        })
        .collect()
}

/// The fixture's batch as xltc's inputs: each row's real tokens padded as
/// the runtime pads them (positions from the model's scheme).
fn inputs(
    model: &Model,
    f: &BTreeMap<String, (Vec<usize>, Vec<f64>)>,
) -> (ModelInputs, TrainingInputs) {
    let (shape, ids) = &f["input_ids"];
    let (batch, seq) = (shape[0], shape[1]);
    let (types, mask) = (&f["token_type_ids"].1, &f["attention_mask"].1);
    let encodings: Vec<Encoding> = (0..batch)
        .map(|b| {
            let row = b * seq..(b + 1) * seq;
            let len = mask[row.clone()].iter().filter(|&&m| m > 0.0).count();
            Encoding {
                ids: ids[row.clone()][..len].iter().map(|&v| v as u32).collect(),
                type_ids: types[row][..len].iter().map(|&v| v as u32).collect(),
            }
        })
        .collect();
    let inputs = ModelInputs::pad(
        &encodings,
        seq,
        model.config.pad_token_id,
        model.position_scheme(),
    );
    assert_eq!(inputs.seq, seq);
    let training = TrainingInputs {
        labels: f["labels"].1.iter().map(|&v| v as u32).collect(),
        example_mask: vec![1.0; batch],
        word_embedding_delta: f["word_embedding_delta"]
            .1
            .iter()
            .map(|&v| v as f32)
            .collect(),
        dropout_key: Vec::new(),
    };
    (inputs, training)
}

/// max |ours - theirs| / max |theirs|, the scale at least `floor` (a
/// thousandth of the largest gradient of the model: gradients that are zero
/// in exact arithmetic, as the key biases' are, since softmax ignores a
/// constant added to a row of scores, hold only rounding noise).
fn relative_error<T: Real>(ours: &[T], theirs: &[f64], floor: f64) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(floor, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(theirs)
        .fold(0.0f64, |m, (a, b)| m.max((a.to_f64() - b).abs()));
    worst / scale
}

fn check<T: Real>(
    name: &str,
    out: &BTreeMap<String, Tensor<T>>,
    f: &BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    tolerance: f64,
) -> f64 {
    let loss = out["loss"].data[0].to_f64();
    let expected = f["loss"].1[0];
    assert!(
        (loss - expected).abs() / expected < tolerance,
        "{name}: loss {loss} vs {expected}"
    );
    let largest = f
        .iter()
        .filter(|(k, _)| k.starts_with("grad."))
        .flat_map(|(_, (_, v))| v.iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    let mut compared = 0;
    for (key, (_, theirs)) in f.iter().filter(|(k, _)| k.starts_with("grad.")) {
        let ours = if key == WORD_EMBEDDING_GRADIENT {
            out.get(key)
        } else {
            out.get(&gradient_name(key.trim_start_matches("grad.")))
        };
        match ours {
            Some(t) => {
                let error = relative_error(&t.data, theirs, 1e-3 * largest);
                assert!(
                    error < tolerance,
                    "{name} {key}: relative error {error:e}; ours {:?} theirs {:?}",
                    &t.data[..3],
                    &theirs[..3]
                );
                worst = worst.max(error);
                compared += 1;
            }
            None => assert!(
                theirs.iter().all(|&v| v == 0.0),
                "{name}: no gradient for {key}"
            ),
        }
    }
    assert!(compared > 20, "{name}: only {compared} gradients compared");
    worst
}

#[test]
fn loss_and_every_gradient_equal_pytorchs() {
    for name in ["tiny-bert", "tiny-xlmr"] {
        let model = Model::load(&model_dir(name)).unwrap();
        let f = read_fixture(name);
        let (inputs, training) = inputs(&model, &f);
        let graph = autodiff(
            &model
                .training_graph(inputs.batch, inputs.seq, false)
                .unwrap(),
        )
        .unwrap();
        let worst64 = check(
            name,
            &run_in::<f64>(&graph, &inputs, &training).unwrap(),
            &f,
            1e-9,
        );
        let worst32 = check(
            name,
            &run_in::<f32>(&graph, &inputs, &training).unwrap(),
            &f,
            1e-4,
        );
        eprintln!("{name}: largest relative gradient error against PyTorch: f64 {worst64:.1e}, f32 {worst32:.1e}");
    }
}

/// Runs a training graph compiled to WGSL twice on the GPU; the two runs'
/// outputs must be equal bit for bit (no atomics, every reduction in a
/// fixed order). Returns them as reference tensors.
fn train_step_on_gpu(
    graph: &xltc::ir::Graph,
    inputs: &ModelInputs,
    training: &TrainingInputs,
) -> BTreeMap<String, Tensor<f32>> {
    let compiled = lower(graph, &CodegenOptions::default()).unwrap();
    let executor = pollster::block_on(Executor::load(gpu(), compiled.program.clone(), |n| {
        compiled.weight(n)
    }))
    .unwrap();
    let run = || pollster::block_on(executor.run_training(gpu(), inputs, training)).unwrap();
    let (first, second) = (run(), run());
    for (name, output) in &first {
        let bits = |data: &[f32]| data.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        assert!(
            bits(&output.data) == bits(&second[name].data),
            "{name} differs between two runs of one program"
        );
    }
    first
        .into_iter()
        .map(|(name, o)| {
            let tensor = Tensor {
                shape: o.shape,
                data: o.data,
            };
            (name, tensor)
        })
        .collect()
}

/// The loss, every parameter's gradient and the word embeddings' from the
/// training graph on the GPU, un-fused and with the fusions training's
/// programs take (every GEMM + bias one kernel), equal PyTorch's (relative
/// error below 1e-4), and repeat bit for bit.
#[test]
fn gpu_gradients_equal_pytorchs_and_repeat_bit_for_bit() {
    let linears = |graph: &xltc::ir::Graph| {
        graph
            .values()
            .filter(|(_, v)| matches!(v.source, Source::Op(Op::Linear { .. })))
            .count()
    };
    for name in ["tiny-bert", "tiny-xlmr"] {
        let model = Model::load(&model_dir(name)).unwrap();
        let f = read_fixture(name);
        let (inputs, training) = inputs(&model, &f);
        let forward = model
            .training_graph(inputs.batch, inputs.seq, false)
            .unwrap();
        let graph = autodiff(&forward).unwrap();
        let fused = fuse_with(&graph, Fusions::TRAINING);
        fused.validate().unwrap();
        // Six GEMMs a layer (Q, K, V, attention output, intermediate,
        // output), the pooler and the classifier.
        let layers = model.config.layers;
        assert_eq!(linears(&graph), 0, "{name}: the un-fused graph");
        assert_eq!(linears(&fused), 6 * layers + 2, "{name}: every GEMM + bias");
        for (form, graph) in [("un-fused", &graph), ("fused", &fused)] {
            let out = train_step_on_gpu(graph, &inputs, &training);
            let worst = check(name, &out, &f, 1e-4);
            eprintln!("{name}, {form}: GPU gradients within {worst:.1e} of PyTorch's");
        }
    }
}

/// With dropout on, the GPU draws the reference's masks exactly (Philox
/// keyed by seed, step, micro-batch and site): every output of the training
/// graph within 1e-4 of the reference's in f32, bit-identical run to run.
#[test]
fn gpu_dropout_draws_the_references_masks() {
    let model = Model::load(&model_dir("tiny-bert")).unwrap();
    let f = read_fixture("tiny-bert");
    let (inputs, mut training) = inputs(&model, &f);
    training.dropout_key = vec![0x9e37_79b9, 0x0000_0007, 3, 1];
    let graph = autodiff(
        &model
            .training_graph(inputs.batch, inputs.seq, true)
            .unwrap(),
    )
    .unwrap();
    let on_gpu = train_step_on_gpu(&graph, &inputs, &training);
    let on_cpu = run_in::<f32>(&graph, &inputs, &training).unwrap();
    let without = run_in::<f32>(
        &autodiff(
            &model
                .training_graph(inputs.batch, inputs.seq, false)
                .unwrap(),
        )
        .unwrap(),
        &inputs,
        &training,
    )
    .unwrap();
    assert!(
        (without["loss"].data[0] - on_cpu["loss"].data[0]).abs() > 1e-3,
        "dropout changed nothing: the test would not see a wrong mask"
    );
    // Scaled by its own largest value, at least a hundredth of the largest
    // gradient of the model: a gradient that is zero in exact arithmetic
    // (the key biases': softmax ignores a constant added to a row of scores)
    // holds only rounding noise, here from two f32 computations, a few ulps
    // of the largest gradient.
    let largest = on_cpu
        .iter()
        .filter(|(name, _)| name.starts_with("grad."))
        .flat_map(|(_, t)| t.data.iter())
        .fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let mut worst = 0.0f64;
    for (name, expected) in &on_cpu {
        let theirs: Vec<f64> = expected.data.iter().map(|&v| v as f64).collect();
        let error = relative_error(&on_gpu[name].data, &theirs, 1e-2 * largest);
        assert!(error < 1e-4, "{name}: relative error {error:e}");
        worst = worst.max(error);
    }
    eprintln!("dropout on the GPU: every output within {worst:.1e} of the reference");
}

/// The fixture's rows `rows` as a micro-batch, padded to the full batch's
/// length as the fixture's slices are, with no perturbation.
fn micro_batch(
    inputs: &ModelInputs,
    training: &TrainingInputs,
    rows: std::ops::Range<usize>,
    hidden: usize,
) -> (ModelInputs, TrainingInputs) {
    let seq = inputs.seq;
    let tokens = rows.start * seq..rows.end * seq;
    let micro = ModelInputs {
        batch: rows.len(),
        seq,
        input_ids: inputs.input_ids[tokens.clone()].to_vec(),
        token_type_ids: inputs.token_type_ids[tokens.clone()].to_vec(),
        position_ids: inputs.position_ids[tokens.clone()].to_vec(),
        attention_mask: inputs.attention_mask[tokens].to_vec(),
    };
    let micro_training = TrainingInputs {
        labels: training.labels[rows.clone()].to_vec(),
        example_mask: vec![1.0; rows.len()],
        word_embedding_delta: vec![0.0; rows.len() * seq * hidden],
        dropout_key: Vec::new(),
    };
    (micro, micro_training)
}

/// Three optimizer steps of the public recipe's loop (two micro-batches of
/// three, each loss halved; clipping at norm 1; AdamW with weight decay 0.01
/// except on biases and LayerNorm weights; lr 1e-3 decaying linearly over
/// 10 steps) on the CPU reference, master weights and moments in f64 (the
/// graph reads them rounded to f32), against PyTorch's: every step's loss
/// and gradient norm, and every parameter after the third step.
#[test]
fn three_adamw_steps_with_accumulation_and_clipping_equal_pytorchs() {
    use xltc::reference::{adamw_step, clip_by_global_norm, decays, linear_schedule, AdamW};

    for name in ["tiny-bert", "tiny-xlmr"] {
        let model = Model::load(&model_dir(name)).unwrap();
        let f = read_fixture(name);
        let (inputs, training) = inputs(&model, &f);
        let micro_rows = [0..3, 3..6];
        let mut graph = autodiff(&model.training_graph(3, inputs.seq, false).unwrap()).unwrap();
        let mut params: BTreeMap<String, Vec<f64>> = graph
            .values()
            .filter_map(|(_, v)| match &v.source {
                Source::Weight(data) => {
                    Some((v.name.clone(), data.iter().map(|&x| x as f64).collect()))
                }
                _ => None,
            })
            .collect();
        let mut moments: BTreeMap<String, (Vec<f64>, Vec<f64>)> = params
            .iter()
            .map(|(n, p)| (n.clone(), (vec![0.0; p.len()], vec![0.0; p.len()])))
            .collect();
        let settings = AdamW {
            weight_decay: 0.01,
            ..AdamW::default()
        };
        for step in 0..3 {
            for (n, p) in &params {
                let rounded: Vec<f32> = p.iter().map(|&x| x as f32).collect();
                assert!(graph.set_weight(n, rounded.into()));
            }
            let mut grads: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let mut loss = 0.0;
            for rows in micro_rows.clone() {
                let (micro, micro_training) =
                    micro_batch(&inputs, &training, rows, model.config.hidden);
                let out = run_in::<f64>(&graph, &micro, &micro_training).unwrap();
                loss += out["loss"].data[0] / 2.0;
                for n in params.keys() {
                    let g = &out[&gradient_name(n)].data;
                    let sum = grads.entry(n.clone()).or_insert_with(|| vec![0.0; g.len()]);
                    for (s, v) in sum.iter_mut().zip(g) {
                        *s += v / 2.0;
                    }
                }
            }
            let expected_loss = f["step_losses"].1[step];
            assert!(
                (loss - expected_loss).abs() / expected_loss < 1e-5,
                "{name} step {step}: loss {loss} vs {expected_loss}"
            );
            let mut slices: Vec<&mut [f64]> = grads.values_mut().map(|g| &mut g[..]).collect();
            let norm = clip_by_global_norm(&mut slices, 1.0);
            let expected_norm = f["step_gradient_norms"].1[step];
            assert!(
                (norm - expected_norm).abs() / expected_norm < 1e-5,
                "{name} step {step}: norm {norm} vs {expected_norm}"
            );
            let lr = 1e-3 * linear_schedule(step, 10, 0);
            for (n, p) in params.iter_mut() {
                let (m, v) = moments.get_mut(n).unwrap();
                adamw_step(
                    p,
                    &grads[n],
                    m,
                    v,
                    step as u32 + 1,
                    lr,
                    decays(n),
                    &settings,
                );
            }
        }
        let mut worst = 0.0f64;
        for (n, p) in &params {
            let expected = &f[&format!("after.{n}")].1;
            let scale = expected.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            let error = p
                .iter()
                .zip(expected)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
                / scale;
            assert!(
                error < 1e-5,
                "{name} {n}: relative error {error:e} after 3 steps"
            );
            worst = worst.max(error);
        }
        eprintln!("{name}: parameters after 3 AdamW steps within {worst:.1e} of PyTorch's");
    }
}

/// Every parameter of a training graph: (checkpoint name, shape), in graph order.
fn parameter_shapes(graph: &xltc::ir::Graph) -> Vec<(String, Vec<usize>)> {
    graph
        .values()
        .filter(|(_, v)| matches!(v.source, Source::Weight(_)))
        .map(|(_, v)| (v.name.clone(), v.shape.clone()))
        .collect()
}

/// Each parameter's buffers of one kind in `executor`'s program (the
/// slice `of` gives, None for other roles), read back and laid end to end
/// in row order: a table split over bindings comes back whole.
fn read_parts(
    executor: &Executor,
    parameters: &[(String, Vec<usize>)],
    of: impl Fn(&xltc_runtime::program::BufferRole) -> Option<&xltc_runtime::program::WeightSlice>,
) -> Vec<Vec<f32>> {
    let buffers = &executor.program().buffers;
    parameters
        .iter()
        .map(|(name, _)| {
            let mut parts: Vec<(usize, usize)> = (0..buffers.len())
                .filter_map(|b| {
                    of(&buffers[b].role)
                        .filter(|s| s.name == *name)
                        .map(|s| (s.first, b))
                })
                .collect();
            parts.sort();
            let ids: Vec<usize> = parts.iter().map(|p| p.1).collect();
            pollster::block_on(executor.read_buffers(gpu(), &ids))
                .unwrap()
                .concat()
        })
        .collect()
}

/// The same three steps on the GPU, f32 throughout: a train-step program
/// for the micro-batches (each parameter's gradient added into its buffer)
/// and an optimizer program (global norm, clipping, AdamW in place, the
/// gradients zeroed), sharing weights, gradients and moments. Every step's
/// loss and norm within 1e-5 of PyTorch's, every parameter after the third
/// step within 1e-5; a second run from the same start gives the same bits.
#[test]
fn three_adamw_steps_on_the_gpu_equal_pytorchs() {
    use xltc::codegen::{lower_optimizer, lower_train_step, optimizer_input, OPTIMIZER_INPUT};
    use xltc::reference::{linear_schedule, AdamW};
    use xltc_runtime::program::BufferRole;
    use xltc_runtime::WeightBuffers;

    for name in ["tiny-bert", "tiny-xlmr"] {
        let options = CodegenOptions::default();
        let model = Model::load(&model_dir(name)).unwrap();
        let f = read_fixture(name);
        let (inputs, training) = inputs(&model, &f);
        // Fused as the trainer's programs are (programs::train_step).
        let graph = fuse_with(
            &autodiff(&model.training_graph(3, inputs.seq, false).unwrap()).unwrap(),
            Fusions::TRAINING,
        );
        let step_program = lower_train_step(&graph, &options).unwrap();
        let parameters = parameter_shapes(&graph);
        let adam = AdamW {
            weight_decay: 0.01,
            ..AdamW::default()
        };
        let optimizer = lower_optimizer(&parameters, &adam, &options).unwrap();
        let run = || {
            let shared = WeightBuffers::default();
            let weight = |n: &str| step_program.weight(n);
            let load = |p| pollster::block_on(Executor::load_sharing(gpu(), p, &shared, weight));
            let train_step = load(step_program.program.clone()).unwrap();
            let optimizer = load(optimizer.clone()).unwrap();
            let mut record = Vec::new();
            for step in 0..3 {
                let mut loss = 0.0;
                for rows in [0..3, 3..6] {
                    let (micro, micro_training) =
                        micro_batch(&inputs, &training, rows, model.config.hidden);
                    let out =
                        pollster::block_on(train_step.run_training(gpu(), &micro, &micro_training))
                            .unwrap();
                    loss += out["loss"].data[0] as f64 / 2.0;
                }
                let lr = 1e-3 * linear_schedule(step, 10, 0);
                let scalars = optimizer_input(&adam, step as u32 + 1, lr, 0.5, 1.0);
                let input =
                    |n: &str| (n == OPTIMIZER_INPUT).then(|| bytemuck::cast_slice(&scalars[..]));
                let out = pollster::block_on(optimizer.run_named(gpu(), input)).unwrap();
                record.push((loss, out["gradient_norm"].data[0] as f64));
            }
            let params = read_parts(&optimizer, &parameters, |r| match r {
                BufferRole::Weight(s) => Some(&s[0]),
                _ => None,
            });
            (record, params)
        };
        let (record, params) = run();
        for (step, (loss, norm)) in record.iter().enumerate() {
            let (expected_loss, expected_norm) =
                (f["step_losses"].1[step], f["step_gradient_norms"].1[step]);
            assert!(
                (loss - expected_loss).abs() / expected_loss < 1e-5,
                "{name} step {step}: loss {loss} vs {expected_loss}"
            );
            assert!(
                (norm - expected_norm).abs() / expected_norm < 1e-5,
                "{name} step {step}: norm {norm} vs {expected_norm}"
            );
        }
        // In f32 a gradient is exact to about 1e-7 of the largest terms it
        // sums, and Adam divides each element's step by its own gradient's
        // size: an element whose gradient is far below its tensor's largest
        // (here below 1e-4 of it, not zero) takes a step whose length carries that
        // gradient's relative error, up to a few percent. Those elements
        // are held to 5% of the three steps' learning rates (1.35e-4); a
        // gradient zero in exact arithmetic (the key biases': softmax
        // ignores a constant added to a row of scores) is all noise, which
        // Adam turns into steps of up to lr / 10 (PyTorch in f32 too): held
        // to the three steps' learning rates. Every other element within
        // 1e-5 of its tensor's largest value.
        let lr_sum: f64 = (0..3).map(|s| 1e-3 * linear_schedule(s, 10, 0)).sum();
        let largest = f
            .iter()
            .filter(|(k, _)| k.starts_with("grad."))
            .flat_map(|(_, (_, v))| v.iter())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let (mut worst, mut small, mut all) = (0.0f64, 0, 0);
        for ((n, _), p) in parameters.iter().zip(&params) {
            let expected = &f[&format!("after.{n}")].1;
            let gradient = &f[&format!("grad.{n}")].1;
            let tensor_largest = gradient.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let scale = expected.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            for ((a, b), g) in p.iter().zip(expected).zip(gradient) {
                let difference = (*a as f64 - b).abs();
                all += 1;
                if tensor_largest < 1e-9 * largest {
                    assert!(difference <= lr_sum, "{name} {n}: moved {difference:e}");
                } else if *g != 0.0 && g.abs() < 1e-4 * tensor_largest {
                    small += 1;
                    assert!(
                        difference <= 0.05 * lr_sum,
                        "{name} {n}: off by {difference:e}"
                    );
                } else {
                    worst = worst.max(difference / scale);
                    assert!(
                        difference / scale < 1e-5,
                        "{name} {n}: relative error {:e}",
                        difference / scale
                    );
                }
            }
        }
        eprintln!(
            "{name}: {small} of {all} parameters have non-zero gradients below 1e-4 of their tensor's"
        );
        assert_eq!(params.len(), parameters.len());
        let (again, params_again) = run();
        assert_eq!(
            record, again,
            "{name}: losses and norms differ between runs"
        );
        assert!(
            params == params_again,
            "{name}: parameters differ between runs"
        );
        eprintln!("{name}: GPU parameters after 3 AdamW steps within {worst:.1e} of PyTorch's");
    }
}

fn xltc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .output()
        .unwrap()
}

/// `xltc train` of the tiny XLM-R on the small yes/no task into `out` (batch
/// 8, no accumulation, lr 1e-3), with `extra` flags.
fn yes_no_training(out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let (model, data) = (model_dir("tiny-xlmr"), fixtures().join("train"));
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
    let mut args: Vec<String> = vec![
        "train".into(),
        path(model),
        "--train".into(),
        path(data.join("train.tsv")),
        "--dev".into(),
        path(data.join("dev.tsv")),
        "-o".into(),
        path(out.to_owned()),
    ];
    let flags = ["--batch", "8", "--accum", "1", "--lr", "1e-3"];
    args.extend(flags.iter().chain(extra).map(|s| s.to_string()));
    args
}

/// `xltc train` on a small learnable task (label 1 when the second sentence
/// starts with "yes"), on the CPU reference and on the GPU, dropout off so
/// that 80 steps suffice: the loss falls, dev accuracy beats chance, the
/// checkpoints load in `xltc run`, and a second run with the same seed
/// writes the same weights bit for bit. (The resume test below trains with
/// dropout on.)
#[test]
fn xltc_train_learns_a_small_task_reproducibly() {
    learns_a_small_task_reproducibly("cpu");
    learns_a_small_task_reproducibly("gpu");
}

/// The test above on `device`: "cpu" (the reference) or "gpu".
fn learns_a_small_task_reproducibly(device: &str) {
    let out = tempfile::tempdir().unwrap();
    let run = |folder: &std::path::Path| {
        let mut extra = vec!["--epochs", "10", "--eval-every", "10", "--no-dropout"];
        extra.extend((device == "cpu").then_some("--cpu"));
        let args = yes_no_training(folder, &extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = xltc(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let (first, second) = (out.path().join("a"), out.path().join("b"));
    run(&first);
    let log: Vec<serde_json::Value> = std::fs::read_to_string(first.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<&serde_json::Value> = log.iter().filter(|l| l.get("step").is_some()).collect();
    assert_eq!(steps.len(), 80, "64 pairs, batch 8, 10 epochs");
    let loss = |l: &serde_json::Value| l["loss"].as_f64().unwrap();
    let early: f64 = steps[..8].iter().map(|l| loss(l)).sum::<f64>() / 8.0;
    let late: f64 = steps[72..].iter().map(|l| loss(l)).sum::<f64>() / 8.0;
    assert!(late < 0.3 * early, "{device}: loss {early} -> {late}");
    let best = steps
        .iter()
        .filter_map(|l| l.get("dev_accuracy").and_then(|a| a.as_f64()))
        .fold(0.0, f64::max);
    assert!(best >= 0.75, "{device}: best dev accuracy {best}");
    for field in [
        "learning_rate",
        "gradient_norm",
        "sequences_per_second",
        "epoch",
    ] {
        assert!(steps[0].get(field).is_some(), "log lacks {field}");
    }
    assert!(std::fs::read_to_string(first.join("loss.svg"))
        .unwrap()
        .contains("<polyline"));
    for checkpoint in ["best", "last"] {
        let folder = first.join(checkpoint);
        let output = xltc(&[
            "run",
            folder.to_str().unwrap(),
            "--cpu",
            "--text",
            "river cat",
            "--pair",
            "yes stone",
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    run(&second);
    let weights =
        |f: &std::path::Path| std::fs::read(f.join("last").join("model.safetensors")).unwrap();
    assert!(
        weights(&first) == weights(&second),
        "{device}: the same seed gave different weights"
    );
    eprintln!("{device}: loss {early:.3} -> {late:.3}, best dev accuracy {best}");
}

/// A bad label stops training before any step, naming the file and line;
/// nothing is written, on the CPU reference as on the GPU.
#[test]
fn xltc_train_refuses_bad_data_before_any_step() {
    let model = model_dir("tiny-xlmr");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("train.tsv");
    std::fs::write(&bad, "a b\tyes c\t1\nd e\tno f\tmaybe\n").unwrap();
    let out = dir.path().join("out");
    let args = [
        "train",
        model.to_str().unwrap(),
        "--train",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    for device in [&["--cpu"][..], &[]] {
        let output = xltc(&[&args[..], device].concat());
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("train.tsv line 2: label \"maybe\""),
            "{stderr}"
        );
        assert!(!out.exists(), "a refused run wrote {}", out.display());
    }
    // A resumed run takes everything from its folder: a setting given again
    // (here the device, or the learning rate) is refused, not ignored.
    for flag in [&["--cpu"][..], &["--lr", "1e-3"]] {
        let args = [&["train", "--resume", out.to_str().unwrap()][..], flag].concat();
        let output = xltc(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success()
                && stderr.contains("cannot be used with")
                && stderr.contains(flag[0]),
            "{flag:?}: {stderr}"
        );
    }
}

/// A run killed with SIGKILL in the middle resumes from its folder alone and
/// ends with the weights, bit for bit, and the log of an uninterrupted run.
#[test]
fn a_killed_run_resumes_bit_identically() {
    killed_run_resumes_bit_identically("cpu");
    killed_run_resumes_bit_identically("gpu");
}

/// The test above on `device`: "cpu" (the reference) or "gpu".
fn killed_run_resumes_bit_identically(device: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    let mut extra = vec!["--epochs", "30", "--eval-every", "20", "--save-every", "3"];
    extra.extend((device == "cpu").then_some("--cpu"));
    let args = |out: &std::path::Path| yes_no_training(out, &extra);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args(&whole))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args(&killed))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = killed.join("state").join("state.json");
    let started = std::time::Instant::now();
    let mut killed_at = None;
    while started.elapsed().as_secs() < 300 && matches!(child.try_wait(), Ok(None)) {
        let step = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["position"]["step"].as_u64());
        if let Some(step) = step.filter(|&s| s >= 30) {
            killed_at = Some(step);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let killed_at = killed_at.expect("the run ended or never saved step 30");
    assert!(
        killed_at < 200,
        "killed at step {killed_at} of 240: too late to test a resume"
    );
    assert!(!killed.join("last").exists(), "the killed run had finished");
    let output = xltc(&["train", "--resume", killed.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |f: &std::path::Path, file: &str| std::fs::read(f.join(file)).unwrap();
    assert!(
        read(&whole.join("last"), "model.safetensors")
            == read(&killed.join("last"), "model.safetensors"),
        "{device}: resumed weights differ from the uninterrupted run's (killed at step {killed_at})"
    );
    let steps = |f: &std::path::Path| -> Vec<String> {
        String::from_utf8(read(f, "log.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("step").is_some())
            .map(|v| format!("{} {} {}", v["step"], v["loss"], v["dev_accuracy"]))
            .collect()
    };
    assert_eq!(steps(&whole), steps(&killed), "{device}: the logs differ");
}

/// An encoder without a head gets a new one, as transformers initialises it
/// (XLM-R's classifier.dense and out_proj; normal weights, zero biases), in
/// OUT/init, and trains; the result is a classifier with the given labels.
#[test]
fn an_encoder_without_a_head_gets_a_new_one() {
    let encoder = common::model_copy("tiny-xlmr");
    common::edit_tensors(encoder.path(), |tensors| {
        tensors.retain(|t| !t.0.starts_with("classifier."));
        for t in tensors.iter_mut() {
            t.0 = t.0.trim_start_matches("roberta.").to_owned();
        }
    });
    common::edit_config(encoder.path(), |c| {
        c["architectures"] = serde_json::json!(["XLMRobertaModel"]);
        c.as_object_mut().unwrap().remove("id2label");
        c.as_object_mut().unwrap().remove("label2id");
    });
    let data = fixtures().join("train");
    let out = tempfile::tempdir().unwrap();
    let output = xltc(&[
        "train",
        encoder.path().to_str().unwrap(),
        "--labels",
        "no,yes",
        "--train",
        data.join("train.tsv").to_str().unwrap(),
        "-o",
        out.path().to_str().unwrap(),
        "--cpu",
        "--max-steps",
        "3",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let init = out.path().join("init");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(init.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["architectures"][0],
        "XLMRobertaForSequenceClassification"
    );
    assert_eq!(config["id2label"]["1"], "yes");
    let tensors = common::read_tensors(&init.join("model.safetensors"));
    let head = |name: &str| {
        tensors
            .iter()
            .find(|t| t.0 == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(head("classifier.out_proj.weight").2, [2, 36]);
    let bias: &[u8] = &head("classifier.dense.bias").3;
    assert!(bias.iter().all(|&b| b == 0), "biases start at zero");
    let weight: Vec<f32> = head("classifier.dense.weight")
        .3
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let std =
        (weight.iter().map(|w| (*w as f64).powi(2)).sum::<f64>() / weight.len() as f64).sqrt();
    assert!(
        (0.017..0.023).contains(&std),
        "initializer_range 0.02, drew std {std}"
    );
    assert!(head("roberta.embeddings.word_embeddings.weight").2.len() == 2);
    let last = out.path().join("last");
    let output = xltc(&[
        "run",
        last.to_str().unwrap(),
        "--cpu",
        "--json",
        "--text",
        "a",
        "--pair",
        "yes b",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["labels"], serde_json::json!(["no", "yes"]));
}

/// `xltc compile --training` stores training's programs, by kind, in the
/// artifact, and a GPU trainer given them runs them: two accumulated steps
/// with dropout, then dev accuracy, equal bit for bit a trainer that
/// compiled its own. To show that the stored programs, not fresh ones, ran:
/// the same programs labelled as compiled without dropout, given to a
/// trainer without dropout, reproduce the dropout run, which a trainer
/// without dropout that compiles its own does not. Programs compiled for
/// other settings are refused.
#[test]
fn training_programs_stored_in_the_artifact_train_as_compiled_ones() {
    use xltc::train::{Example, Settings, Trainer};
    use xltc_runtime::Artifact;

    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("tiny-xlmr.xltc");
    let model_path = model_dir("tiny-xlmr");
    let output = xltc(&[
        "compile",
        model_path.to_str().unwrap(),
        "-o",
        artifact.to_str().unwrap(),
        "--max-seq",
        "32",
        "--training",
        "--train-batch",
        "4",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&artifact).unwrap();
    let stored = Artifact::from_bytes("tiny-xlmr.xltc", &bytes)
        .unwrap()
        .manifest
        .training
        .expect("compiled with --training");
    let shapes: Vec<(usize, usize)> = stored
        .steps
        .iter()
        .map(|b| (b.program.batch, b.program.seq))
        .collect();
    assert_eq!(shapes, vec![(4, 16), (4, 32)]);
    assert!(stored.dropout);

    let model = Model::load(&model_path).unwrap();
    let examples = common::training_examples();
    let settings = |dropout| Settings {
        batch: 4,
        accumulation: 2,
        lr: 1e-3,
        dropout,
        ..Settings::default()
    };
    let run = |mut trainer: Trainer| {
        let group: Vec<&Example> = examples.iter().collect();
        let losses: Vec<f64> = (0..2)
            .map(|_| trainer.train_step(&group, 0, 10).unwrap().loss)
            .collect();
        let accuracy = trainer.accuracy(&examples).unwrap();
        trainer.sync().unwrap();
        (losses, accuracy, trainer.params.clone())
    };
    let compiled = run(Trainer::on_gpu(&model, settings(true)).unwrap());
    let from_artifact =
        run(Trainer::on_gpu_with(&model, settings(true), Some(stored.clone())).unwrap());
    assert!(
        compiled == from_artifact,
        "the artifact's programs trained otherwise"
    );
    let without_dropout = run(Trainer::on_gpu(&model, settings(false)).unwrap());
    assert_ne!(without_dropout.0, compiled.0, "dropout changed nothing");
    let mut labelled_without = stored.clone();
    labelled_without.dropout = false;
    let ran_stored =
        run(Trainer::on_gpu_with(&model, settings(false), Some(labelled_without)).unwrap());
    assert!(
        ran_stored == compiled,
        "the trainer compiled programs instead of running the stored ones"
    );
    let refused = Trainer::on_gpu_with(&model, settings(false), Some(stored))
        .err()
        .expect("programs compiled with dropout, for a run without");
    assert!(refused.to_string().contains("dropout true"), "{refused}");
}

/// A run that can no longer write (a full disk; here a file-size limit,
/// `RLIMIT_FSIZE`, set on the running process once it has saved step 30, so
/// every checkpoint write after that fails with EFBIG as a full disk fails
/// with ENOSPC) stops with an error that names the file, leaves no
/// temporary file or folder in OUT, and keeps its last complete state:
/// resumed once there is room again, it ends bit-identical to a run that
/// was never interrupted.
#[cfg(target_os = "linux")]
#[test]
fn a_run_that_cannot_write_stops_clearly_and_keeps_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, full) = (dir.path().join("whole"), dir.path().join("full"));
    let extra = [
        "--epochs",
        "30",
        "--eval-every",
        "20",
        "--save-every",
        "3",
        "--cpu",
    ];
    let args = |out: &std::path::Path| yes_no_training(out, &extra);
    let output = xltc(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args(&full))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let state = full.join("state").join("state.json");
    let started = std::time::Instant::now();
    let mut limited_at = None;
    while started.elapsed().as_secs() < 300 {
        let step = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["position"]["step"].as_u64());
        if let Some(step) = step.filter(|&s| s >= 30) {
            // Stopped while the limit is set, so that no write straddles it.
            let limit = libc::rlimit {
                rlim_cur: 100_000,
                rlim_max: 100_000,
            };
            unsafe {
                assert_eq!(libc::kill(pid, libc::SIGSTOP), 0);
                assert_eq!(
                    libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()),
                    0,
                    "prlimit: {}",
                    std::io::Error::last_os_error()
                );
                assert_eq!(libc::kill(pid, libc::SIGCONT), 0);
            }
            limited_at = Some(step);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let limited_at = limited_at.expect("the run never saved step 30");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the run went on past a failed write (limited at step {limited_at}): {stderr}"
    );
    // The state (tensors.safetensors, 3 x 198 KB) or a checkpoint
    // (model.safetensors) is the first file past the limit.
    assert!(
        stderr.contains("cannot write") && stderr.contains(".safetensors"),
        "the error names no file: {stderr}"
    );
    assert!(stderr.contains("File too large"), "{stderr}");
    let leftovers: Vec<String> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(!full.join("last").exists(), "the limited run had finished");
    let output = xltc(&["train", "--resume", full.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |f: &std::path::Path| std::fs::read(f.join("last/model.safetensors")).unwrap();
    assert!(
        read(&whole) == read(&full),
        "resumed weights differ from the uninterrupted run's (limited at step {limited_at})"
    );
}

/// A table past one binding (XLM-R base's word embeddings, 768 MB, on an
/// adapter that binds 128 MiB) trains a part at a time: its weight, its
/// gradient and its moments are row parts, the gather's gradient is added
/// by one dispatch a part straight into the gradient's parts, and the
/// optimizer updates each part. Here a 24,000-byte limit splits the tiny
/// BERT's word embeddings (76 KB) into 4 parts, with ids in every part and
/// repeated ids. The gradients summed over two micro-batches, the losses,
/// and every parameter after three AdamW steps (clipping not reached)
/// equal bit for bit those of the same run with every table whole; the
/// gradient norm (its squares summed a part at a time) within 1e-6.
#[test]
fn a_table_split_over_bindings_trains_bit_for_bit_as_a_whole_one() {
    use xltc::codegen::{lower_optimizer, lower_train_step, optimizer_input, OPTIMIZER_INPUT};
    use xltc::reference::AdamW;
    use xltc_runtime::program::BufferRole;
    use xltc_runtime::WeightBuffers;

    let model = Model::load(&model_dir("tiny-bert")).unwrap();
    let (batch, seq) = (2, 8);
    let rows = [
        [2, 5, 5, 170, 333, 500, 527, 3],
        [2, 527, 40, 170, 170, 499, 332, 3],
    ];
    let encodings: Vec<Encoding> = rows
        .iter()
        .map(|ids| Encoding {
            ids: ids.to_vec(),
            type_ids: vec![0; seq],
        })
        .collect();
    let config = &model.config;
    let inputs = ModelInputs::pad(&encodings, 0, config.pad_token_id, model.position_scheme());
    let training = TrainingInputs {
        labels: vec![0, 2],
        example_mask: vec![1.0; batch],
        word_embedding_delta: vec![0.0; batch * seq * config.hidden],
        dropout_key: vec![7, 0, 0, 0],
    };
    let graph = autodiff(&model.training_graph(batch, seq, false).unwrap()).unwrap();
    let parameters = parameter_shapes(&graph);
    let adam = AdamW {
        weight_decay: 0.01,
        ..AdamW::default()
    };
    let run = |limit: u64| {
        let options = CodegenOptions {
            max_binding_bytes: limit,
            ..CodegenOptions::default()
        };
        let step = lower_train_step(&graph, &options).unwrap();
        let optimizer = lower_optimizer(&parameters, &adam, &options).unwrap();
        let word_parts = |program: &xltc_runtime::Program| {
            let parts = program.buffers.iter().filter(|b| match &b.role {
                BufferRole::Gradient(s) => s.name.ends_with("word_embeddings.weight"),
                _ => false,
            });
            parts.count()
        };
        let parts = (word_parts(&step.program), word_parts(&optimizer));
        let shared = WeightBuffers::default();
        let weight = |n: &str| step.weight(n);
        let load = |p| pollster::block_on(Executor::load_sharing(gpu(), p, &shared, weight));
        let (train_step, optimizer) = (
            load(step.program.clone()).unwrap(),
            load(optimizer).unwrap(),
        );
        let (mut losses, mut norms, mut gradients) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..3u32 {
            for _ in 0..2 {
                let out =
                    pollster::block_on(train_step.run_training(gpu(), &inputs, &training)).unwrap();
                losses.push(out["loss"].data[0]);
            }
            if s == 0 {
                gradients = read_parts(&optimizer, &parameters, |r| match r {
                    BufferRole::Gradient(slice) => Some(slice),
                    _ => None,
                });
            }
            let scalars = optimizer_input(&adam, s + 1, 1e-3, 0.5, 1e9);
            let input =
                |n: &str| (n == OPTIMIZER_INPUT).then(|| bytemuck::cast_slice(&scalars[..]));
            let out = pollster::block_on(optimizer.run_named(gpu(), input)).unwrap();
            norms.push(out["gradient_norm"].data[0] as f64);
        }
        let params = read_parts(&optimizer, &parameters, |r| match r {
            BufferRole::Weight(slices) => Some(&slices[0]),
            _ => None,
        });
        (parts, losses, gradients, norms, params)
    };
    let whole = run(CodegenOptions::default().max_binding_bytes);
    let split = run(24_000);
    assert_eq!(whole.0, (1, 1));
    assert_eq!(split.0, (4, 4), "the word embeddings' gradient parts");
    let word = parameters
        .iter()
        .position(|(n, _)| n.ends_with("word_embeddings.weight"))
        .unwrap();
    let touched = whole.2[word].iter().filter(|v| **v != 0.0).count();
    assert_eq!(
        touched,
        10 * config.hidden,
        "rows of the 10 distinct ids have gradients"
    );
    assert!(whole.2 == split.2, "gradients differ when split");
    assert_eq!(whole.1, split.1, "losses differ when split");
    for (a, b) in whole.3.iter().zip(&split.3) {
        assert!((a - b).abs() <= 1e-6 * a, "gradient norm {a} vs {b}");
    }
    assert!(whole.4 == split.4, "parameters differ when split");
}

/// `xltc train model.xltc` trains the artifact's model with the programs
/// `xltc compile --training` stored in it: the weights it writes equal, bit
/// for bit, those of the same run from the model folder (which compiles its
/// own), and a run whose settings differ from the programs' is refused
/// before any step, saying how to recompile.
#[test]
fn xltc_train_takes_an_artifact_with_its_training_programs() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("tiny-xlmr.xltc");
    let model = model_dir("tiny-xlmr");
    let output = xltc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        artifact.to_str().unwrap(),
        "--training",
        "--train-batch",
        "8",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let extra = ["--epochs", "2", "--eval-every", "4"];
    let train = |out: &std::path::Path, model: Option<&std::path::Path>, more: &[&str]| {
        let mut args = yes_no_training(out, &[&extra[..], more].concat());
        if let Some(model) = model {
            args[1] = model.to_str().unwrap().to_owned();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        xltc(&args)
    };
    let (from_folder, from_artifact) = (dir.path().join("folder"), dir.path().join("artifact"));
    for (out, model) in [
        (&from_folder, None),
        (&from_artifact, Some(artifact.as_path())),
    ] {
        let output = train(out, model, &[]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let weights =
        |out: &std::path::Path| std::fs::read(out.join("last/model.safetensors")).unwrap();
    assert!(
        weights(&from_folder) == weights(&from_artifact),
        "the artifact's programs trained otherwise"
    );
    let refused = dir.path().join("refused");
    let output = train(&refused, Some(&artifact), &["--no-dropout"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--no-dropout") && stderr.contains("dropout true"),
        "{stderr}"
    );
    assert!(
        !refused.join("state").exists(),
        "a refused run saved a state"
    );
}
