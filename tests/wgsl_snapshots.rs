//! Snapshots of the WGSL that codegen emits for the tiny BERT classifier
//! (batch 2, sequence 5), fused (as `xltc compile` emits it), one kernel an
//! op, and its training step with dropout (forward, loss and backward, with
//! training's fusions): every
//! kernel instance, in dispatch order of first use, compared with
//! tests/fixtures/wgsl/tiny-bert/, tiny-bert-unfused/ and tiny-bert-training/. After a deliberate
//! change to a template or to codegen, rewrite them with
//! `XLTC_BLESS=1 cargo test --release --test wgsl_snapshots` and read the diff.

mod common;

use common::{fixtures, model_dir};
use xltc::codegen::{lower, validate_wgsl, CodegenOptions};
use xltc::frontend::Model;

#[test]
fn emitted_wgsl_matches_the_snapshots() {
    let model = Model::load(&model_dir("tiny-bert")).unwrap();
    let graph = model.graph(2, 5);
    check_snapshots(&xltc::passes::fuse(&graph), "tiny-bert");
    check_snapshots(&graph, "tiny-bert-unfused");
    // Fused as the trainer's programs are (programs::train_step).
    let training = xltc::passes::autodiff(&model.training_graph(2, 5, true).unwrap()).unwrap();
    let training = xltc::passes::fuse_with(&training, xltc::passes::Fusions::TRAINING);
    check_snapshots(&training, "tiny-bert-training");
}

fn check_snapshots(graph: &xltc::ir::Graph, snapshot: &str) {
    let program = lower(graph, &CodegenOptions::default()).unwrap().program;
    let folder = fixtures().join("wgsl").join(snapshot);
    let bless = std::env::var_os("XLTC_BLESS").is_some();
    if bless {
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
    }
    let mut expected_files = Vec::new();
    for (index, kernel) in program.kernels.iter().enumerate() {
        validate_wgsl(&kernel.wgsl).unwrap();
        let family = kernel.name.split('[').next().unwrap();
        let file = format!("{index:02}-{family}.wgsl");
        let path = folder.join(&file);
        let contents = format!("// {}\n{}", kernel.name, kernel.wgsl);
        if bless {
            std::fs::write(&path, &contents).unwrap();
        }
        let snapshot = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("no snapshot {}; run with XLTC_BLESS=1", path.display()));
        assert_eq!(contents, snapshot, "{file} differs from its snapshot");
        expected_files.push(file);
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk,
        expected_files,
        "stale or missing snapshots in {}",
        folder.display()
    );
}
