//! Real models on real text: multilingual-e5-small and all-MiniLM-L6-v2
//! (from models/fetch.py) on the sentence pairs of benches/real_pairs.tsv
//! (Debian package descriptions and their human translations, each pair one
//! input of 30 to 128 tokens), at batch 1 and 32. In the same run, on the
//! same padded batches: xltc on the GPU adapter (the fused programs of an
//! artifact compiled in memory, run by a runtime session), xltc's CPU path
//! (f32, fast matrix products), the exact CPU reference (f64 sums) and
//! PyTorch on the CPU (benches/real_models_peer.py, where torch and
//! transformers are installed), which also reports how far its embeddings
//! are from the CPU path's. Prints a markdown table, then the peak resident
//! memory of `xltc run` on each model's artifact.
//!
//!     cargo bench -p xltc --bench real_models
//!
//! XLTC_BENCH_PAIRS=N takes the first N pairs (default all 32),
//! XLTC_BENCH_BATCHES the batch sizes (default 1,32), XLTC_BENCH_MODELS the
//! model folders' names (default multilingual-e5-small,all-minilm-l6-v2).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use xltc::codegen::{CodegenOptions, GemmKernel};
use xltc::compile::{compile, CompileOptions};
use xltc::frontend::Model;
use xltc::reference::{self, Products};
use xltc_runtime::{Encoding, Gpu, ModelInputs, Overflow, Session, TextTokenizer};

const MAX_SEQ: usize = 128;

fn model_cache() -> PathBuf {
    match std::env::var("XLTC_MODEL_CACHE") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/cache")),
    }
}

/// The committed pairs, as (sentence 1, sentence 2).
fn pairs() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/real_pairs.tsv");
    let text = std::fs::read_to_string(path).expect("benches/real_pairs.tsv");
    let count = common::env_list("XLTC_BENCH_PAIRS", &[usize::MAX])[0];
    text.lines()
        .skip(1)
        .take(count)
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields[1].to_owned(), fields[2].to_owned())
        })
        .collect()
}

/// Batches of `size` sequences, shortest first (as `xltc run` batches).
fn batches(sequences: &[Encoding], size: usize) -> Vec<Vec<Encoding>> {
    let mut sorted = sequences.to_vec();
    sorted.sort_by_key(|s| s.ids.len());
    sorted.chunks(size).map(<[Encoding]>::to_vec).collect()
}

fn cpu_time(model: &Model, batches: &[Vec<Encoding>], products: Products) -> (Duration, Vec<f32>) {
    let start = Instant::now();
    let mut embeddings = Vec::new();
    for batch in batches {
        let inputs = ModelInputs::pad(batch, 0, model.config.pad_token_id, model.position_scheme());
        let graph = model.graph(inputs.batch, inputs.seq);
        let training = Default::default();
        let out = reference::run_with::<f32>(&graph, &inputs, &training, products, &|_| None);
        let mut out = out.unwrap();
        embeddings.extend(out.remove(model.prediction_output()).unwrap().data);
    }
    (start.elapsed(), embeddings)
}

/// One pass over the batches after a warm-up pass (pipelines made, weights
/// uploaded), every GEMM that suits a lane kernel on `gemm`.
fn gpu_time(
    gpu: &Gpu,
    model: &Model,
    batches: &[Vec<Encoding>],
    size: usize,
    gemm: GemmKernel,
) -> Duration {
    let options = CompileOptions {
        max_seq: MAX_SEQ,
        max_batch: size,
        fusions: Default::default(),
        codegen: CodegenOptions {
            gemm,
            ..Default::default()
        },
    };
    let artifact = compile(model, &options, |_, _| {}).unwrap();
    let session = Session::new(artifact.manifest.buckets, &artifact.manifest.model);
    let pass = || {
        for batch in batches {
            let run = session.run(gpu, batch, model.prediction_output(), |n| model.weight(n));
            pollster::block_on(run).unwrap();
        }
    };
    pass();
    let start = Instant::now();
    pass();
    start.elapsed()
}

/// PyTorch's seconds for the same batches, and the largest distance of its
/// embeddings from `expected`; None where torch or transformers is missing.
fn torch_time(
    folder: &std::path::Path,
    batches: &[Vec<Encoding>],
    normalize: bool,
    expected: &[f32],
) -> Option<(Duration, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    let batches: Vec<Vec<[&[u32]; 2]>> = batches
        .iter()
        .map(|b| b.iter().map(|s| [&s.ids[..], &s.type_ids[..]]).collect())
        .collect();
    let body =
        serde_json::json!({ "batches": batches, "normalize": normalize, "expected": expected });
    std::fs::write(&request, body.to_string()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../benches/real_models_peer.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(folder)
        .arg(&request)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut numbers = text
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok());
    let seconds = numbers.next()?;
    Some((Duration::from_secs_f64(seconds), numbers.next()?))
}

/// `xltc ARGS` as a child process: its peak resident memory in bytes.
/// Measured before this process holds any model: a child's peak counts
/// the memory of the process it was spawned from.
fn xltc_peak_memory(args: &[&str]) -> u64 {
    // Reaped by wait4 below, which also gives its peak.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(
        pid > 0 && status == 0,
        "xltc {args:?} failed (status {status})"
    );
    usage.ru_maxrss as u64 * 1024
}

/// The peak resident memory of `xltc run` on an artifact of the model in
/// `folder` (`xltc compile`, buckets up to 32 x 128) predicting one pair
/// on the GPU adapter, and the artifact's size.
fn run_peak_memory(folder: &std::path::Path, pair: &(String, String)) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.xltc");
    let (folder, artifact) = (folder.to_str().unwrap(), path.to_str().unwrap());
    xltc_peak_memory(&[
        "compile",
        folder,
        "-o",
        artifact,
        "--max-seq",
        "128",
        "--batch",
        "32",
    ]);
    let peak = xltc_peak_memory(&["run", artifact, "--text", &pair.0, "--pair", &pair.1]);
    (peak, std::fs::metadata(&path).unwrap().len())
}

fn per_second(sequences: usize, time: Duration) -> f64 {
    sequences as f64 / time.as_secs_f64()
}

fn main() {
    let names = std::env::var("XLTC_BENCH_MODELS")
        .unwrap_or_else(|_| "multilingual-e5-small,all-minilm-l6-v2".into());
    let pairs = pairs();
    let memory: Vec<(&str, (u64, u64))> = names
        .split(',')
        .map(|name| (name, run_peak_memory(&model_cache().join(name), &pairs[0])))
        .collect();
    let gpu = common::gpu();
    let batch_sizes = common::env_list("XLTC_BENCH_BATCHES", &[1, 32]);
    println!("cpu threads: {}", rayon::current_num_threads());
    // The subgroup lane GEMM (`compile --subgroup-gemm`, or `--tune`'s
    // choice) where the adapter's subgroups have 8 lanes or more.
    let subgroups = gpu.adapter.subgroup_min_size >= 8;
    println!(
        "subgroups: {}",
        match gpu.adapter.subgroup_min_size {
            0 => "none".to_owned(),
            n => format!("at least {n} lanes"),
        }
    );
    println!();
    println!("| model | batch | sequences (tokens) | xltc GPU seq/s | xltc GPU, subgroup GEMM, seq/s | xltc CPU f32 seq/s | exact reference seq/s | PyTorch CPU seq/s | GPU / PyTorch | GPU subgroups / PyTorch | CPU f32 / PyTorch | CPU f32 / exact | PyTorch vs CPU f32 (max abs) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for name in names.split(',') {
        let folder = model_cache().join(name);
        let model = Model::load(&folder)
            .unwrap_or_else(|e| panic!("{e} (python3 models/fetch.py fetches the models)"));
        let tokenizer = TextTokenizer::from_json(&model.tokenizer_json, &folder, MAX_SEQ).unwrap();
        let sequences: Vec<Encoding> = pairs
            .iter()
            .map(|(a, b)| tokenizer.encode(a, Some(b), Overflow::Truncate).unwrap())
            .collect();
        let tokens: usize = sequences.iter().map(|s| s.ids.len()).sum();
        let normalize = matches!(
            model.output,
            xltc::frontend::ModelOutput::SentenceEmbedding { normalize: true }
        );
        for &size in &batch_sizes {
            let batches = batches(&sequences, size);
            let n = sequences.len();
            let gpu_rate = |gemm| per_second(n, gpu_time(&gpu, &model, &batches, size, gemm));
            let subgroup_rate = subgroups.then(|| gpu_rate(GemmKernel::LanesSubgroup));
            let gpu_rate = gpu_rate(GemmKernel::Lanes);
            let (fast, embeddings) = cpu_time(&model, &batches, Products::Fast);
            let (exact, _) = cpu_time(&model, &batches, Products::Exact);
            let (fast_rate, exact_rate) = (per_second(n, fast), per_second(n, exact));
            let torch = torch_time(&folder, &batches, normalize, &embeddings);
            let (torch_rate, distance) = match torch {
                Some((time, distance)) => (
                    format!("{:.2}", per_second(n, time)),
                    format!("{distance:.1e}"),
                ),
                None => ("not installed".into(), "-".into()),
            };
            let ratio = |rate: f64| match torch {
                Some((time, _)) => format!("{:.3}", rate / per_second(n, time)),
                None => "-".into(),
            };
            let (subgroup_rate, subgroup_ratio) = match subgroup_rate {
                Some(rate) => (format!("{rate:.2}"), ratio(rate)),
                None => ("-".to_owned(), "-".to_owned()),
            };
            println!(
                "| {name} | {size} | {n} ({tokens}) | {gpu_rate:.2} | {subgroup_rate} | {fast_rate:.2} | {exact_rate:.2} | {torch_rate} | {} | {subgroup_ratio} | {} | {:.2} | {distance} |",
                ratio(gpu_rate),
                ratio(fast_rate),
                fast_rate / exact_rate,
            );
        }
    }
    println!();
    println!(
        "| model | artifact MiB | peak resident memory of `xltc run` (one pair, GPU adapter) MiB |"
    );
    println!("|---|---|---|");
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for (name, (peak, artifact)) in memory {
        println!("| {name} | {:.0} | {:.0} |", mib(artifact), mib(peak));
    }
}
