//! GEMM on BERT-base shapes: xltc's WGSL GEMMs (the lane kernel codegen
//! emits where rows along k are whole vec4s, its subgroup form where the
//! adapter has subgroups of 8 lanes or more, and the tiled one) on the GPU
//! adapter against the `gemm` crate on every CPU core, measured in the same
//! run, the forward's products and the backward's (dx with the weight read
//! k-major, dw with both operands read k-major). Prints a markdown table
//! with GFLOP/s and the ratios.
//!
//!     cargo bench -p xltc --bench gemm
//!
//! Token counts (M) default to 1024 and 4096 (batch 8 and 32 of 128 tokens);
//! on a slow software adapter fewer can be asked for: XLTC_BENCH_TOKENS=128.

mod common;

use std::time::Duration;

use xltc::codegen::{lower, CodegenOptions, GemmKernel};
use xltc::ir::{Graph, Op};
use xltc_runtime::{Executor, ModelInputs};

/// Matmuls a GPU run holds, so that one submit and one readback are spread
/// over several products.
const REPEAT: usize = 4;

fn gflops(m: usize, n: usize, k: usize, time: Duration) -> f64 {
    2.0 * (m * n * k) as f64 / time.as_secs_f64() / 1e9
}

/// How a product's operands lie: the forward's x [m, k] times w [n, k]
/// transposed; the backward dx's dy [m, k] times w stored [k, n]; the
/// backward dw's dy stored [k, m] transposed times x stored [k, n].
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Forward,
    Dx,
    Dw,
}

/// The time of one `m` x `n` x `k` product (out [m, n], inner k) laid out
/// as `layout` on the GPU by `kernel`.
fn gpu_time(
    gpu: &xltc_runtime::Gpu,
    (m, n, k): (usize, usize, usize),
    layout: Layout,
    kernel: GemmKernel,
    runs: usize,
) -> Duration {
    let mut g = Graph::new(1, 1);
    let mut operand = |name: &str, shape: [usize; 2], seed| {
        let data = common::random_floats(shape[0] * shape[1], seed, 1.0);
        g.weight(name, shape.to_vec(), data.into())
    };
    let op = match layout {
        Layout::Forward => Op::MatMul {
            x: operand("x", [m, k], 1),
            weight: operand("w", [n, k], 2),
        },
        Layout::Dx => Op::MatMulBackwardX {
            dy: operand("dy", [m, k], 1),
            weight: operand("w", [k, n], 2),
        },
        Layout::Dw => Op::MatMulBackwardWeight {
            dy: operand("dy", [k, m], 1),
            x: operand("x", [k, n], 2),
        },
    };
    let products: Vec<_> = (0..REPEAT)
        .map(|i| g.op(format!("y{i}"), op.clone()))
        .collect();
    g.mark_output("y", *products.last().unwrap());
    let options = CodegenOptions {
        max_binding_bytes: u64::MAX,
        gemm: kernel,
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
    let subgroups = gpu.adapter.subgroup_min_size >= 8;
    println!(
        "subgroups: {}",
        match gpu.adapter.subgroup_min_size {
            0 => "none".to_owned(),
            n => format!("at least {n} lanes"),
        }
    );
    println!();
    println!("| GEMM M x N x K (out rows x out columns x inner) | operands | xltc lane GEMM GFLOP/s | xltc lane GEMM, subgroups, GFLOP/s | xltc tiled GEMM GFLOP/s | gemm crate CPU GFLOP/s | best xltc / CPU | subgroups / lane | lane / tiled |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &tokens in &token_counts {
        // BERT-base's three Linear shapes (in, out), forward and backward.
        let mut cases = Vec::new();
        for layout in [Layout::Forward, Layout::Dx, Layout::Dw] {
            for (inner, out) in [(768, 768), (768, 3072), (3072, 768)] {
                cases.push(match layout {
                    Layout::Forward => ((tokens, out, inner), layout, "forward: x, w"),
                    Layout::Dx => ((tokens, inner, out), layout, "dx: dy, w k-major"),
                    Layout::Dw => ((out, inner, tokens), layout, "dw: dy and x k-major"),
                });
            }
        }
        for (shape, layout, operands) in cases {
            let (m, n, k) = shape;
            let speed = |kernel| gflops(m, n, k, gpu_time(&gpu, shape, layout, kernel, runs));
            let lanes = speed(GemmKernel::Lanes);
            let subgroup = subgroups.then(|| speed(GemmKernel::LanesSubgroup));
            let tiled = speed(GemmKernel::Tiled);
            // The peer: the same number of multiply-adds, x [m, k] w^T.
            let on_cpu = gflops(m, n, k, cpu_time(m, n, k, runs));
            let best = lanes.max(tiled).max(subgroup.unwrap_or(0.0));
            let (subgroup, ratio) = match subgroup {
                Some(s) => (format!("{s:.1}"), format!("{:.2}", s / lanes)),
                None => ("-".to_owned(), "-".to_owned()),
            };
            println!(
                "| {m} x {n} x {k} | {operands} | {lanes:.1} | {subgroup} | {tiled:.1} | {on_cpu:.1} | {:.2} | {ratio} | {:.2} |",
                best / on_cpu,
                lanes / tiled
            );
        }
    }
}
