// The demo page: loads the wasm runtime and a compiled model (?model=URL,
// default model.xltc), and shows each prediction. With ?test=URL it predicts
// every [text, pair] in that JSON list and POSTs the results to /result, which
// is how the automated browser test reads them.
import init, { load } from "./pkg/xltc_web.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

function show(prediction) {
  const result = JSON.parse(prediction);
  const out = $("result");
  out.replaceChildren();
  if (result.labels) {
    result.labels.forEach((label, i) => {
      const p = result.probabilities[i];
      const row = document.createElement("div");
      row.textContent = `${label}: ${p.toFixed(4)}`;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.innerHTML = `<div style="width:${(100 * p).toFixed(1)}%"></div>`;
      out.append(row, bar);
    });
  } else if (result.cosine !== null) {
    out.textContent = `cosine similarity ${result.cosine.toFixed(4)}`;
  } else {
    out.textContent = `embedding of ${result.embedding.length} dimensions`;
  }
}

async function runTest(demo, url) {
  const pairs = await (await fetch(url)).json();
  const results = [];
  for (const [text, pair] of pairs) {
    results.push(JSON.parse(await demo.predict(text, pair)));
  }
  await fetch("/result", { method: "POST", body: JSON.stringify({ adapter: demo.adapter(), results }) });
}

async function main() {
  if (!navigator.gpu) {
    throw new Error("This browser has no WebGPU. Use a recent Chrome or Edge, or Chromium with " +
      "--enable-unsafe-webgpu; on Linux, Chrome may also need --enable-features=Vulkan.");
  }
  await init();
  const demo = await load(params.get("model") ?? "model.xltc");
  $("status").textContent = `${demo.describe()} on ${demo.adapter()}`;
  if (params.get("test")) {
    await runTest(demo, params.get("test"));
    return;
  }
  $("form").hidden = false;
  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      show(await demo.predict($("text").value, $("pair").value));
    } catch (e) {
      $("error").textContent = String(e);
    }
  });
}

main().catch(async (e) => {
  $("error").textContent = String(e);
  if (params.get("test")) {
    await fetch("/result", { method: "POST", body: JSON.stringify({ error: String(e) }) });
  }
});
