//! GEMM on BERT-base shapes: xltc's two WGSL GEMMs (the lane kernel codegen
//! emits where rows along k are whole vec4s, and the tiled one) on the GPU
//! adapter against the `gemm` crate on every CPU core, measured in the same
//! run. Prints a markdown table with GFLOP/s and the ratios.
//!
//!     cargo bench -p xltc --bench gemm
//!
//! Token counts (M) default to 1024 and 4096 (batch 8 and 32 of 128 tokens);
//! on a slow software adapter fewer can be asked for: XLTC_BENCH_TOKENS=128.

mod common;

use std::time::Duration;

use xltc::codegen::{lower, CodegenOptions};
use xltc::ir::{Graph, Op};
use xltc_runtime::{Executor, ModelInputs};

/// Matmuls a GPU run holds, so that one submit and one readback are spread
/// over several products.
const REPEAT: usize = 4;

fn gflops(m: usize, n: usize, k: usize, time: Duration) -> f64 {
    2.0 * (m * n * k) as f64 / time.as_secs_f64() / 1e9
}

/// The time of one `m` x `n` x `k` product on the GPU, by the lane kernel
/// (`lanes`) or the tiled one.
fn gpu_time(
    gpu: &xltc_runtime::Gpu,
    (m, n, k): (usize, usize, usize),
    lanes: bool,
    runs: usize,
) -> Duration {
    let mut g = Graph::new(1, 1);
    let x = g.weight("x", vec![m, k], common::random_floats(m * k, 1, 1.0).into());
    let w = g.weight("w", vec![n, k], common::random_floats(n * k, 2, 1.0).into());
    let products: Vec<_> = (0..REPEAT)
        .map(|i| g.op(format!("y{i}"), Op::MatMul { x, weight: w }))
        .collect();
    g.mark_output("y", *products.last().unwrap());
    let options = CodegenOptions {
        max_binding_bytes: u64::MAX,
        lane_gemm: lanes,
        ..CodegenOptions::default()
    };
    let compiled = lower(&g, &options).unwrap();
    let executor = pollster::block_on(Executor::load(gpu, compiled.program.clone(), |n| {
        compiled.weight(n)
    }))
    .unwrap();
    let inputs = ModelInputs::pad(
        &[xltc_runtime::Encoding {
            ids: vec![0],
            type_ids: vec![0],
        }],
        1,
        0,
        xltc_runtime::PositionScheme::FromZero,
    );
    common::median_time(runs, || {
        pollster::block_on(executor.run(gpu, &inputs)).unwrap();
    }) / REPEAT as u32
}

fn cpu_time(m: usize, n: usize, k: usize, runs: usize) -> Duration {
    let x = common::random_floats(m * k, 1, 1.0);
    let w = common::random_floats(n * k, 2, 1.0);
    let mut y = vec![0.0f32; m * n];
    common::median_time(runs, || unsafe {
        // y[m, n] = x[m, k] * w[n, k]^T: w read with column stride k.
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    })
}

fn main() {
    let runs: usize = std::env::var("XLTC_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let token_counts: Vec<usize> = std::env::var("XLTC_BENCH_TOKENS")
        .ok()
        .map(|t| t.split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_else(|| vec![1024, 4096]);
    let gpu = common::gpu();
    println!(
        "cpu peer: gemm crate 0.19 on {} threads",
        rayon::current_num_threads()
    );
    println!();
    println!("| GEMM M x N x K (tokens x out x in) | xltc lane GEMM GFLOP/s | xltc tiled GEMM GFLOP/s | gemm crate CPU GFLOP/s | lane / CPU | lane / tiled |");
    println!("|---|---|---|---|---|---|");
    for &tokens in &token_counts {
        for (n, k) in [(768, 768), (3072, 768), (768, 3072)] {
            let shape = (tokens, n, k);
            let lanes = gflops(tokens, n, k, gpu_time(&gpu, shape, true, runs));
            let tiled = gflops(tokens, n, k, gpu_time(&gpu, shape, false, runs));
            let on_cpu = gflops(tokens, n, k, cpu_time(tokens, n, k, runs));
            println!(
                "| {tokens} x {n} x {k} | {lanes:.1} | {tiled:.1} | {on_cpu:.1} | {:.2} | {:.2} |",
                lanes / on_cpu,
                lanes / tiled
            );
        }
    }
}
