//! The browser demo's engine: the same runtime as the native command,
//! compiled to wasm32 and run on WebGPU. It fetches a compiled .xltc
//! artifact, tokenizes, runs the artifact's programs and returns predictions
//! as JSON to the page.

use std::collections::BTreeMap;
use std::path::Path;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use xltc_runtime::artifact::ModelInfo;
use xltc_runtime::{Artifact, Gpu, Overflow, Request, Session, TextTokenizer};

/// A loaded model, ready to predict.
#[wasm_bindgen]
pub struct Demo {
    gpu: Gpu,
    model: ModelInfo,
    session: Session,
    tokenizer: TextTokenizer,
    weights: BTreeMap<String, Vec<f32>>,
}

fn js_error(error: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&error.to_string())
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, JsValue> {
    let window = web_sys::window().ok_or_else(|| js_error("no window"))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await?
        .dyn_into()?;
    if !response.ok() {
        return Err(js_error(format!("{url}: HTTP {}", response.status())));
    }
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Fetches the artifact at `url` and sets up WebGPU for it.
#[wasm_bindgen]
pub async fn load(url: String) -> Result<Demo, JsValue> {
    let bytes = fetch_bytes(&url).await?;
    let artifact = Artifact::from_vec(&url, bytes).map_err(js_error)?;
    let weights = artifact.weights_f32(&url).map_err(js_error)?;
    let gpu = Gpu::new().await.map_err(js_error)?;
    let manifest = artifact.manifest;
    let session = Session::new(manifest.buckets, &manifest.model);
    let tokenizer =
        TextTokenizer::from_json(&manifest.tokenizer_json, Path::new(&url), session.max_seq())
            .map_err(js_error)?;
    Ok(Demo {
        gpu,
        model: manifest.model,
        session,
        tokenizer,
        weights,
    })
}

#[wasm_bindgen]
impl Demo {
    /// The adapter, said plainly when it is a software one.
    pub fn adapter(&self) -> String {
        self.gpu.adapter.to_string()
    }

    /// The model's name and architecture.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.model.name, self.model.architecture)
    }

    /// A prediction as JSON, as `xltc run --json` writes it: "labels" and
    /// "probabilities" for a classifier; "embedding", "pair_embedding" and
    /// "cosine" for an embedding model.
    pub async fn predict(&self, text: String, pair: Option<String>) -> Result<String, JsValue> {
        let request = Request {
            origin: "the page's input".into(),
            text,
            pair: pair.filter(|p| !p.trim().is_empty()),
        };
        let weight = |n: &str| self.weights.get(n).map(Vec::as_slice);
        let requests = [request];
        let predictions = self
            .session
            .predict(
                &self.gpu,
                &self.tokenizer,
                &requests,
                Overflow::Truncate,
                weight,
            )
            .await
            .map_err(js_error)?;
        Ok(predictions[0]
            .to_json(&requests[0], &self.model.labels)
            .to_string())
    }
}
