//! Compile time of `xltc compile` for BERT-base and XLM-R-base shapes (random
//! weights; batch buckets 1 to 32, sequence buckets 16 to 128): graph
//! building, lowering and naga validation of every bucket, and packing the
//! artifact, against the time the front end takes to read and check the same
//! checkpoint, measured in the same run. Prints a markdown table.
//!
//!     cargo bench -p xltc --bench compile

mod common;

use std::time::Instant;

use xltc::codegen::CodegenOptions;
use xltc::compile::{compile, CompileOptions};
use xltc::frontend::Model;

fn main() {
    println!("| model shape | checkpoint | load and check s | buckets | compile s | pack artifact s | compile / load |");
    println!("|---|---|---|---|---|---|---|");
    for (name, shape) in [
        ("BERT-base", &common::BERT_BASE),
        ("XLM-R-base", &common::XLMR_BASE),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let folder = common::write_random_encoder(dir.path(), shape);
        let bytes = std::fs::metadata(folder.join("model.safetensors"))
            .unwrap()
            .len();
        let start = Instant::now();
        let model = Model::load(&folder).unwrap();
        let load = start.elapsed().as_secs_f64();
        let options = CompileOptions {
            max_seq: 128,
            max_batch: 32,
            fusions: Default::default(),
            codegen: CodegenOptions::default(),
        };
        let start = Instant::now();
        let artifact = compile(&model, &options, |_, _| {}).unwrap();
        let compile_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let packed = artifact.to_bytes();
        let pack = start.elapsed().as_secs_f64();
        println!(
            "| {name} | {:.0} MB | {load:.2} | {} | {compile_s:.2} | {pack:.2} | {:.2} |",
            bytes as f64 / 1e6,
            artifact.manifest.buckets.len(),
            compile_s / load
        );
        drop(packed);
    }
}
