//! A BERT-base-shaped encoder (random weights, 12 layers, hidden 768, 12
//! heads, sequence 128) at batch 8 and 32: latency and sequences per second
//! of xltc on the GPU adapter (the fused graph `xltc compile` emits, and the
//! un-fused one), of the xltc CPU reference, and of PyTorch on the CPU where
//! it is installed, all in the same run. Prints a markdown table.
//!
//!     cargo bench -p xltc --bench encoder
//!
//! A software adapter is far too slow for these sizes; there, fewer layers,
//! shorter sequences or other batches can be asked for (the table says which):
//!     XLTC_BENCH_LAYERS=2 XLTC_BENCH_SEQ=32 XLTC_BENCH_BATCHES=8 cargo bench ...

mod common;

use std::time::{Duration, Instant};

use xltc::codegen::{lower, CodegenOptions};
use xltc::frontend::Model;
use xltc::passes::fuse;
use xltc::reference;
use xltc_runtime::{Encoding, Executor, ModelInputs};

fn inputs(model: &Model, batch: usize, seq: usize) -> ModelInputs {
    let ids = common::random_floats(seq, 3, 1.0);
    let encoding = Encoding {
        ids: ids
            .iter()
            .map(|v| ((v.abs() * 20_000.0) as u32).max(5))
            .collect(),
        type_ids: vec![0; seq],
    };
    ModelInputs::pad(
        &vec![encoding; batch],
        seq,
        model.config.pad_token_id,
        model.position_scheme(),
    )
}

fn gpu_time(
    gpu: &xltc_runtime::Gpu,
    model: &Model,
    batch: usize,
    seq: usize,
    runs: usize,
    fused: bool,
) -> Duration {
    let mut graph = model.graph(batch, seq);
    if fused {
        graph = fuse(&graph);
    }
    let compiled = lower(&graph, &CodegenOptions::default()).unwrap();
    let executor = pollster::block_on(Executor::load(gpu, compiled.program.clone(), |n| {
        compiled.weight(n)
    }))
    .unwrap();
    let inputs = inputs(model, batch, seq);
    common::median_time(runs, || {
        pollster::block_on(executor.run(gpu, &inputs)).unwrap();
    })
}

/// One run: the reference is slow, and has nothing to warm up.
fn cpu_time(model: &Model, batch: usize, seq: usize) -> Duration {
    let graph = model.graph(batch, seq);
    let inputs = inputs(model, batch, seq);
    let start = Instant::now();
    reference::run(&graph, &inputs).unwrap();
    start.elapsed()
}

fn main() {
    let runs: usize = std::env::var("XLTC_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let gpu = common::gpu();
    let dir = tempfile::tempdir().unwrap();
    let layers = common::env_list("XLTC_BENCH_LAYERS", &[12])[0];
    let seq = common::env_list("XLTC_BENCH_SEQ", &[128])[0];
    let shape = common::EncoderShape {
        layers,
        ..common::BERT_BASE
    };
    let model = Model::load(&common::write_random_encoder(dir.path(), &shape)).unwrap();
    println!("cpu threads: {}", rayon::current_num_threads());
    println!("encoder: hidden 768, 12 heads, FFN 3072, {layers} layers (BERT-base has 12), random weights");
    println!();
    println!("| batch x seq | xltc GPU s | seq/s | un-fused GPU s | xltc CPU reference s | seq/s | PyTorch CPU s | seq/s | GPU vs CPU reference | GPU vs PyTorch | fused vs un-fused |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for batch in common::env_list("XLTC_BENCH_BATCHES", &[8, 32]) {
        let on_gpu = gpu_time(&gpu, &model, batch, seq, runs, true).as_secs_f64();
        let unfused = gpu_time(&gpu, &model, batch, seq, runs, false).as_secs_f64();
        let on_cpu = cpu_time(&model, batch, seq).as_secs_f64();
        let torch = common::torch_time(false, batch, seq, layers, runs).map(|t| t.as_secs_f64());
        let per_second = |t: f64| batch as f64 / t;
        let (torch_s, torch_rate, torch_ratio) = match torch {
            Some(t) => (
                format!("{t:.3}"),
                format!("{:.1}", per_second(t)),
                format!("{:.2}x", t / on_gpu),
            ),
            None => ("not installed".into(), "-".into(), "-".into()),
        };
        println!(
            "| {batch} x {seq} | {on_gpu:.3} | {:.1} | {unfused:.3} | {on_cpu:.3} | {:.1} | {torch_s} | {torch_rate} | {:.2}x | {torch_ratio} | {:.2}x |",
            per_second(on_gpu),
            per_second(on_cpu),
            on_cpu / on_gpu,
            unfused / on_gpu,
        );
    }
}
