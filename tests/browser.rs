//! The browser demo, for real: the tiny XLM-R classifier compiled to an
//! artifact, served with the page from web/ on 127.0.0.1, run by headless
//! Chromium on WebGPU (SwiftShader), and its probabilities compared with the
//! native runtime's on the same artifact, within 1e-4, for several
//! multilingual pairs. Needs web/pkg (bash web/build.sh) and Chromium
//! (Debian package chromium); .ci/run provides both. Missing either fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{model_dir, repo_root, Golden};

const CHROMIUM_FLAGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu-sandbox",
];

fn xltc(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Where a request path is served from: the page from web/, the wasm build
/// from web/pkg/, anything else (the artifact, the pairs) from `site`.
fn resolve(path: &str, web: &Path, site: &Path) -> Option<PathBuf> {
    let name = path.trim_start_matches('/');
    if name.contains("..") {
        return None;
    }
    let file = match name {
        "index.html" | "main.js" => web.join(name),
        _ if name.starts_with("pkg/") => web.join(name),
        _ => site.join(name),
    };
    file.is_file().then_some(file)
}

/// Answers one request: a file for GET, the body to `results` for POST /result.
fn serve(mut stream: TcpStream, web: &Path, site: &Path, results: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/");
    if method == "POST" && path == "/result" {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok();
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = results.send(String::from_utf8_lossy(&body).into_owned());
        return;
    }
    let response = match resolve(path, web, site)
        .and_then(|f| std::fs::read(&f).ok().map(|b| (f, b)))
    {
        Some((file, body)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content_type(&file),
                body.len()
            );
            [head.into_bytes(), body].concat()
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

#[test]
fn the_browser_demo_predicts_what_the_native_runtime_predicts() {
    let web = repo_root().join("web");
    assert!(
        web.join("pkg/xltc_web_bg.wasm").is_file(),
        "web/pkg is missing: build the browser demo with `bash web/build.sh` first"
    );
    let chromium = std::env::var("XLTC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "no Chromium at {chromium}: install Debian's chromium"
    );

    // The artifact and the pairs.
    let site = tempfile::tempdir().unwrap();
    let artifact = site.path().join("model.xltc");
    let model = model_dir("tiny-xlmr");
    xltc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        artifact.to_str().unwrap(),
        "--max-seq",
        "100",
        "--batch",
        "4",
    ]);
    let golden = Golden::read("tiny-xlmr");
    let texts = golden.texts("pairs.texts").unwrap();
    let pairs = golden.texts("pairs.pairs").unwrap();
    let list: Vec<[&String; 2]> = texts.iter().zip(&pairs).map(|(t, p)| [t, p]).collect();
    std::fs::write(
        site.path().join("pairs.json"),
        serde_json::to_string(&list).unwrap(),
    )
    .unwrap();

    // Native probabilities on the same artifact.
    let tsv = common::write_pairs_tsv(site.path(), &texts, &pairs);
    let native: Vec<Vec<f64>> = xltc(&[
        "run",
        artifact.to_str().unwrap(),
        "--json",
        "--file",
        tsv.to_str().unwrap(),
    ])
    .lines()
    .map(|line| {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        common::probabilities(&record)
    })
    .collect();

    // Serve the page and the artifact; run Chromium until the page reports.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::channel();
    let (web_dir, site_dir) = (web.clone(), site.path().to_owned());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve(stream, &web_dir, &site_dir, &sender);
        }
    });
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/index.html?model=model.xltc&test=pairs.json");
    let mut browser = Command::new(&chromium)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let report = receiver.recv_timeout(Duration::from_secs(240));
    let _ = browser.kill();
    let _ = browser.wait();
    let report: serde_json::Value =
        serde_json::from_str(&report.expect("the page reported within 240 s")).unwrap();
    assert!(
        report.get("error").is_none(),
        "the page failed: {}",
        report["error"]
    );
    let adapter = report["adapter"].as_str().unwrap();
    eprintln!("browser adapter: {adapter}");
    assert!(
        adapter.contains("software adapter"),
        "SwiftShader must be reported as software: {adapter}"
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), native.len());
    let mut worst = 0.0f64;
    for (result, expected) in results.iter().zip(&native) {
        for (p, e) in common::probabilities(result).iter().zip(expected) {
            worst = worst.max((p - e).abs());
        }
    }
    eprintln!("browser vs native: largest probability difference {worst:.2e}");
    assert!(worst < 1e-4, "browser and native differ by {worst}");
}
