//! What each robust training method costs: one optimizer step (one
//! micro-batch, dropout 0.1) of a BERT-shaped sequence-pair classifier with
//! random weights under each method, on the GPU adapter and on the xltc CPU
//! reference, each as a ratio to vanilla fine-tuning measured in the same
//! run on the same device: adversarial training with 1 and 3 ascent steps
//! (clean loss mixed in, so 2 + K passes), RS-RP (one pass with noise), and
//! vanilla with the parallel-data alignment term, cosine and contrastive
//! (one more pass on as many sentences and their translations), and with
//! the head's symmetric KL (one more pass on as many pairs and their
//! translated versions, twice the rows). RS-DA changes the data only: a step costs what vanilla's
//! does. A markdown table with the adapter named.
//!
//!     cargo bench -p xltc --bench method_step
//!
//! Sizes (defaults small enough for a software adapter): XLTC_BENCH_LAYERS
//! (2), XLTC_BENCH_SEQ (64), XLTC_BENCH_BATCHES (8), XLTC_BENCH_RUNS (3).

mod common;

use std::time::Duration;

use xltc::frontend::Model;
use xltc::ir::AlignmentLoss;
use xltc::train::method::{Adversarial, Law, Method, Noise, Norm, Parallel, Start};
use xltc::train::{Example, Settings, Trainer};
use xltc_runtime::Encoding;

/// The median time of an optimizer step under `method` (and the alignment
/// term measured as `align` says, if given), after a warm-up step that
/// compiles the programs.
fn step_time(
    model: &Model,
    examples: &[Example],
    method: &Method,
    align: Option<AlignmentLoss>,
    on_gpu: bool,
    runs: usize,
) -> Duration {
    let settings = Settings {
        batch: examples.len(),
        accumulation: 1,
        method: method.clone(),
        parallel: align.map(|align_loss| Parallel {
            files: Vec::new(),
            align_weight: 1.0,
            code_switch: 0.0,
            align_attack: false,
            align_loss,
        }),
        ..Settings::default()
    };
    let mut trainer = if on_gpu {
        Trainer::on_gpu(model, settings)
    } else {
        Trainer::new(model, settings)
    }
    .unwrap_or_else(|e| panic!("the method benchmark needs a trainer: {e}"));
    if align.is_some_and(|a| a.on_head()) {
        // Each pair and a "translated" version of it (its ids reversed: the
        // same length, so the same cost), as the head's term reads them.
        trainer.parallel = examples
            .iter()
            .map(|e| {
                let mut translated = e.encoding.clone();
                translated.ids.reverse();
                (e.encoding.clone(), translated)
            })
            .collect();
    } else if align.is_some() {
        // Each sentence alone, as the alignment term reads parallel lines.
        trainer.parallel = examples
            .iter()
            .map(|e| {
                let half = e.encoding.ids.len() / 2;
                let one = |ids: &[u32]| Encoding {
                    ids: ids.to_vec(),
                    type_ids: vec![0; ids.len()],
                };
                (one(&e.encoding.ids[..half]), one(&e.encoding.ids[half..]))
            })
            .collect();
    }
    let group: Vec<&Example> = examples.iter().collect();
    trainer.train_step(&group, 0, 1_000).unwrap();
    common::median_time(runs, || {
        trainer.train_step(&group, 0, 1_000).unwrap();
    })
}

fn main() {
    let runs = common::env_list("XLTC_BENCH_RUNS", &[3])[0];
    let layers = common::env_list("XLTC_BENCH_LAYERS", &[2])[0];
    let seq = common::env_list("XLTC_BENCH_SEQ", &[64])[0];
    let batch = common::env_list("XLTC_BENCH_BATCHES", &[8])[0];
    let dir = tempfile::tempdir().unwrap();
    let shape = common::EncoderShape {
        layers,
        labels: 2,
        ..common::BERT_BASE
    };
    let model = Model::load(&common::write_random_encoder(dir.path(), &shape)).unwrap();
    let examples = common::random_examples(batch, seq, 31);
    let adversarial = |steps| {
        Method::Adv(Adversarial {
            eps: 0.5,
            step: 0.2,
            steps,
            norm: Norm::L2Token,
            init: Start::Zero,
            clean_weight: 0.5,
        })
    };
    let methods: Vec<(&str, Method, Option<AlignmentLoss>)> = vec![
        ("vanilla (and RS-DA)", Method::Vanilla, None),
        ("adversarial, 1 ascent step", adversarial(1), None),
        ("adversarial, 3 ascent steps", adversarial(3), None),
        (
            "RS-RP (Gaussian noise)",
            Method::RsRp(Noise {
                law: Law::Gaussian,
                sigma: 0.02,
            }),
            None,
        ),
        (
            "vanilla + alignment term (cosine)",
            Method::Vanilla,
            Some(AlignmentLoss::Cosine),
        ),
        (
            "vanilla + alignment term (contrastive)",
            Method::Vanilla,
            Some(AlignmentLoss::Contrastive { temperature: 0.05 }),
        ),
        (
            "vanilla + head's symmetric KL (pairs in translation)",
            Method::Vanilla,
            Some(AlignmentLoss::SymmetricKl),
        ),
    ];
    common::gpu(); // names the adapter
    println!("cpu threads: {}", rayon::current_num_threads());
    println!(
        "model: BertForSequenceClassification, hidden 768, 12 heads, FFN 3072, {layers} layers, \
         random weights, dropout 0.1; one micro-batch of {batch} x {seq} a step"
    );
    println!();
    println!("| method | xltc GPU s/step | time vs vanilla | xltc CPU reference s/step | time vs vanilla |");
    println!("|---|---|---|---|---|");
    let (mut gpu_base, mut cpu_base) = (0.0, 0.0);
    for (name, method, align) in &methods {
        let on_gpu = step_time(&model, &examples, method, *align, true, runs).as_secs_f64();
        let on_cpu = step_time(&model, &examples, method, *align, false, 1).as_secs_f64();
        if gpu_base == 0.0 {
            (gpu_base, cpu_base) = (on_gpu, on_cpu);
        }
        println!(
            "| {name} | {on_gpu:.3} | {:.2}x | {on_cpu:.3} | {:.2}x |",
            on_gpu / gpu_base,
            on_cpu / cpu_base
        );
    }
}
