//! One optimizer step of fine-tuning a BERT-base-shaped sequence-pair
//! classifier (random weights, 12 layers, hidden 768, 12 heads, sequence
//! 128, batch 8, 2 labels, dropout 0.1 as in training): forward, loss,
//! backward, global-norm clipping and AdamW. Seconds a step and sequences a
//! second of xltc on the GPU adapter, of xltc's CPU path (`--cpu`: the
//! reference in f32 with fast matrix products), and of
//! PyTorch's training step on the CPU (benches/torch_peer.py --train, where
//! torch and transformers are installed), all in the same run; a markdown
//! table with the adapter named.
//!
//!     cargo bench -p xltc --bench train_step
//!
//! A software adapter is far too slow for these sizes; fewer layers, shorter
//! sequences or other batches can be asked for (the table says which):
//!     XLTC_BENCH_LAYERS=2 XLTC_BENCH_SEQ=32 XLTC_BENCH_BATCHES=4 cargo bench ...

mod common;

use std::time::Duration;

use xltc::frontend::Model;
use xltc::train::{Example, Settings, Trainer};

/// The median time of an optimizer step over `examples` (one micro-batch),
/// after a warm-up step (which compiles the GPU's programs); the adapter
/// name, or None on the CPU.
fn step_time(
    model: &Model,
    examples: &[Example],
    on_gpu: bool,
    runs: usize,
) -> (Duration, Option<String>) {
    let settings = Settings {
        batch: examples.len(),
        accumulation: 1,
        ..Settings::default()
    };
    let mut trainer = if on_gpu {
        Trainer::on_gpu(model, settings)
    } else {
        Trainer::new(model, settings)
    }
    .unwrap_or_else(|e| panic!("the training-step benchmark needs a trainer: {e}"));
    let group: Vec<&Example> = examples.iter().collect();
    let time = common::median_time(runs, || {
        trainer.train_step(&group, 0, 1_000).unwrap();
    });
    (time, trainer.adapter())
}

fn main() {
    let runs: usize = std::env::var("XLTC_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let layers = common::env_list("XLTC_BENCH_LAYERS", &[12])[0];
    let seq = common::env_list("XLTC_BENCH_SEQ", &[128])[0];
    let shape = common::EncoderShape {
        layers,
        labels: 2,
        ..common::BERT_BASE
    };
    let model = Model::load(&common::write_random_encoder(dir.path(), &shape)).unwrap();
    let mut adapter_named = false;
    let mut rows = Vec::new();
    for batch in common::env_list("XLTC_BENCH_BATCHES", &[8]) {
        let examples = common::random_examples(batch, seq, 11);
        let (on_gpu, adapter) = step_time(&model, &examples, true, runs);
        if !adapter_named {
            let adapter = adapter.expect("a GPU trainer names its adapter");
            println!("adapter: {adapter}");
            println!("cpu threads: {}", rayon::current_num_threads());
            println!(
                "model: BertForSequenceClassification, hidden 768, 12 heads, FFN 3072, \
                 {layers} layers (BERT-base has 12), 2 labels, random weights, dropout 0.1"
            );
            println!("step: forward, loss, backward, global-norm clipping at 1.0, AdamW (lr 2e-5)");
            println!();
            println!("| batch x seq | xltc GPU s/step | seq/s | xltc CPU f32 s/step | seq/s | PyTorch CPU s/step | seq/s | GPU vs CPU f32 | GPU vs PyTorch | CPU f32 vs PyTorch |");
            println!("|---|---|---|---|---|---|---|---|---|---|");
            adapter_named = true;
        }
        let (on_cpu, _) = step_time(&model, &examples, false, 1);
        let (on_gpu, on_cpu) = (on_gpu.as_secs_f64(), on_cpu.as_secs_f64());
        let torch = common::torch_time(true, batch, seq, layers, runs).map(|t| t.as_secs_f64());
        let per_second = |t: f64| batch as f64 / t;
        let (torch_s, torch_rate, torch_ratio, cpu_ratio) = match torch {
            Some(t) => (
                format!("{t:.3}"),
                format!("{:.2}", per_second(t)),
                format!("{:.3}x", t / on_gpu),
                format!("{:.3}x", t / on_cpu),
            ),
            None => ("not installed".into(), "-".into(), "-".into(), "-".into()),
        };
        rows.push(format!(
            "| {batch} x {seq} | {on_gpu:.3} | {:.2} | {on_cpu:.3} | {:.2} | {torch_s} | {torch_rate} | {:.3}x | {torch_ratio} | {cpu_ratio} |",
            per_second(on_gpu),
            per_second(on_cpu),
            on_cpu / on_gpu,
        ));
        println!("{}", rows.last().unwrap());
    }
}
