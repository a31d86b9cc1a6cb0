//! `xltc run`: predictions from a model folder or a compiled artifact, on
//! the GPU or the CPU reference. Everything is computed before anything is
//! printed, so an error leaves no partial output.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use xltc::frontend::{Model, ModelOutput};
use xltc::predict::{predict, Engine, Prediction, Request};
use xltc_runtime::Overflow;

use crate::RunArgs;

pub fn run(args: RunArgs) -> Result<()> {
    if args.max_len < 2 {
        bail!("--max-len must be at least 2 (room for the special tokens)");
    }
    let requests = match (&args.text, &args.file) {
        (Some(text), _) => vec![Request {
            origin: "--text".into(),
            text: text.clone(),
            pair: args.pair.clone(),
        }],
        (None, Some(file)) => read_requests(file)?,
        (None, None) => bail!("give --text or --file"),
    };
    let (mut model, engine) = super::load_model(&args.model, args.cpu)?;
    if let Engine::Compiled { gpu, session } = &engine {
        // The artifact's programs are all a run needs: its weights go to
        // the GPU now, and the host copy goes.
        session
            .upload_weights(gpu, |n| model.weight(n))
            .with_context(|| format!("loading {}", args.model.display()))?;
        model.drop_weights();
    }
    let tokenizer = super::text_tokenizer(&model, &engine, args.max_len)?;
    let overflow = if args.truncate {
        Overflow::Truncate
    } else {
        Overflow::Error
    };
    let show_progress = requests.len() > args.batch && std::io::stderr().is_terminal();
    let predictions = predict(
        &engine,
        &model,
        &tokenizer,
        &requests,
        overflow,
        args.batch,
        |done, total| {
            if show_progress {
                eprint!("\rxltc: {done}/{total} sequences");
            }
        },
    )
    .with_context(|| format!("running {}", model.origin.display()))?;
    if show_progress {
        eprintln!();
    }
    // Everything is computed before anything is printed: an error leaves no partial output.
    let mut out = std::io::stdout().lock();
    if args.json {
        for (request, prediction) in requests.iter().zip(&predictions) {
            writeln!(out, "{}", prediction.to_json(request, &model.config.labels))?;
        }
    } else {
        writeln!(out, "{}", describe(&model, &engine))?;
        for (i, (request, prediction)) in requests.iter().zip(&predictions).enumerate() {
            writeln!(out, "{}", table_line(&model, i + 1, request, prediction))?;
        }
    }
    Ok(())
}

/// Reads `text` or `text<TAB>pair` lines, naming the line in every error.
fn read_requests(path: &Path) -> Result<Vec<Request>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut requests = Vec::new();
    for (number, line) in content.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = format!("{} line {}", path.display(), number + 1);
        let mut fields = line.split('\t');
        let text = fields.next().unwrap_or_default().to_owned();
        let pair = fields.next().map(str::to_owned);
        if fields.next().is_some() {
            bail!("{origin}: expected `text` or `text<TAB>pair`, found more than two fields");
        }
        requests.push(Request { origin, text, pair });
    }
    if requests.is_empty() {
        bail!(
            "{}: no inputs (every line is empty or a comment)",
            path.display()
        );
    }
    Ok(requests)
}

fn describe(model: &Model, engine: &Engine) -> String {
    let c = &model.config;
    let name = &model.name;
    let output = match model.output {
        ModelOutput::Classification => format!("labels {}", c.labels.join(", ")),
        ModelOutput::SentenceEmbedding { normalize: true } => "mean pooling, L2-normalised".into(),
        ModelOutput::SentenceEmbedding { normalize: false } => "mean pooling".into(),
    };
    let on = super::engine_name(engine);
    format!(
        "{name}: {}, {} layers, hidden {}, {} heads, vocabulary {}; {output}; on {on}",
        c.architecture, c.layers, c.hidden, c.heads, c.vocab
    )
}

fn table_line(model: &Model, index: usize, request: &Request, prediction: &Prediction) -> String {
    let inputs = match &request.pair {
        Some(pair) => format!("{} | {}", request.text, pair),
        None => request.text.clone(),
    };
    let result = match prediction {
        Prediction::Classification { probabilities, .. } => {
            let label = prediction.label().unwrap_or(0);
            let all: Vec<String> = model
                .config
                .labels
                .iter()
                .zip(probabilities)
                .map(|(l, p)| format!("{l} {p:.4}"))
                .collect();
            format!("{:<14} ({})", model.config.labels[label], all.join(", "))
        }
        Prediction::Embedding { embedding, .. } => match prediction.cosine() {
            Some(cosine) => format!("cosine {cosine:.4}"),
            None => {
                let head: Vec<String> = embedding
                    .iter()
                    .take(4)
                    .map(|v| format!("{v:+.4}"))
                    .collect();
                format!("[{} ...] ({} dims)", head.join(" "), embedding.len())
            }
        },
    };
    format!("[{index}] {result}   {inputs}")
}
