//! `xltc eval`: zero-shot cross-lingual evaluation of a model (or of the
//! word-overlap baseline) on a folder in the XTREME layout. Every input is
//! checked and every score computed before the report is written, into a
//! temporary folder renamed into place, so a failure leaves no partial report.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;
use xltc::evaluate::report::{markdown, pairs_tsv, Header};
use xltc::evaluate::scorer::Scorer;
use xltc::evaluate::smoothing::Smoothing;
use xltc::evaluate::suite::{Selection, Suite};
use xltc::evaluate::{evaluate, Evaluation, Perturbation};
use xltc::frontend::ModelOutput;
use xltc::plot;
use xltc::train::method::Law;
use xltc_runtime::SynonymSets;

use super::progress::Progress;
use crate::EvalArgs;

pub fn eval(args: EvalArgs) -> Result<()> {
    if args.draws == 0 {
        bail!("--draws must be at least 1");
    }
    if args.attack.is_some() && args.perturb.is_none() {
        bail!("--attack worst-of-k keeps the worst of the --perturb synonyms draws: give --perturb synonyms too");
    }
    let smoothing = smoothing(&args)?;
    let selection = Selection {
        languages: args.langs.clone(),
        matrix: args.pairs_matrix,
        max_pairs: args.max_pairs,
    };
    let suite = Suite::discover(&args.data, &selection)?;
    let synonyms = match (&args.perturb, &args.synonyms) {
        (None, _) => None,
        (Some(_), None) => Some((
            SynonymSets::counterfitted(),
            "counterfitted_neighbors.json (shipped)".to_owned(),
        )),
        (Some(_), Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some((
                SynonymSets::from_json(&path.display().to_string(), &text)?,
                path.display().to_string(),
            ))
        }
    };
    let perturbation = synonyms.as_ref().map(|(sets, origin)| Perturbation {
        synonyms: sets,
        synonyms_origin: origin.clone(),
        draws: args.draws,
        seed: args.seed,
        worst_of_k: args.attack.is_some(),
    });
    let (evaluation, header) = match &args.model {
        Some(path) => {
            let (model, engine) = super::load_model(path, args.cpu)?;
            let tokenizer = super::text_tokenizer(&model, &engine, args.max_len)?;
            let scorer = Scorer::Model {
                model: &model,
                engine: &engine,
                tokenizer: &tokenizer,
                batch: args.batch,
                prefix: args.prefix.clone().unwrap_or_default(),
                smoothing: smoothing.clone(),
            };
            if smoothing.is_some() && model.output != ModelOutput::Classification {
                bail!(
                    "{}: --smooth votes over a classifier's predictions; this model has no \
                     classification head",
                    path.display()
                );
            }
            let header = header(&args, &model.name, super::engine_name(&engine));
            (run(&suite, &scorer, perturbation.as_ref())?, header)
        }
        None => {
            let header = header(
                &args,
                "the word-overlap baseline",
                "the CPU (no model)".into(),
            );
            (
                run(&suite, &Scorer::WordOverlap, perturbation.as_ref())?,
                header,
            )
        }
    };
    let folder = args
        .output
        .clone()
        .unwrap_or_else(|| default_report_folder(&args));
    write_report(&folder, &header, &evaluation)?;
    print_summary(&args, &evaluation, &folder)
}

/// The smoothed classifier the flags ask for, if any.
fn smoothing(args: &EvalArgs) -> Result<Option<Smoothing>> {
    let Some(draws) = args.smooth else {
        if args.sigma.is_some() || args.certify {
            bail!("--sigma and --certify are settings of --smooth N");
        }
        return Ok(None);
    };
    if draws == 0 {
        bail!("--smooth must be at least 1 draw");
    }
    if args.model.is_none() {
        bail!("--smooth smooths a model's classifier; give a model, not a baseline");
    }
    let Some(sigma) = args.sigma.filter(|s| s.is_finite() && *s > 0.0) else {
        bail!("--smooth needs --sigma, a positive noise scale");
    };
    if args.certify && args.noise != Law::Gaussian {
        bail!("--certify holds for Gaussian noise only (Cohen et al.'s bound)");
    }
    if !(args.alpha > 0.0 && args.alpha < 0.5) {
        bail!("--alpha must be in (0, 0.5) (got {})", args.alpha);
    }
    Ok(Some(Smoothing {
        draws,
        sigma,
        law: args.noise,
        seed: args.seed,
        alpha: args.alpha,
        certify: args.certify,
    }))
}

fn run(suite: &Suite, scorer: &Scorer, perturbation: Option<&Perturbation>) -> Result<Evaluation> {
    let pairs_per_sequence = if scorer.is_similarity() { 0.5 } else { 1.0 };
    let mut progress = Progress::new("eval", "pairs");
    let evaluation = evaluate(suite, scorer, perturbation, |done, total| {
        progress.update(done, total, pairs_per_sequence)
    })?;
    Ok(evaluation)
}

fn header(args: &EvalArgs, model: &str, on: String) -> Header {
    Header {
        model: model.to_owned(),
        data: args.data.display().to_string(),
        on,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        max_pairs: args.max_pairs,
        prefix: args.prefix.clone(),
    }
}

/// Beside the model: model.xltc -> model.eval/, folder -> folder.eval/; for
/// the baseline, word-overlap.eval/ beside the data folder.
fn default_report_folder(args: &EvalArgs) -> PathBuf {
    let (base, name) = match &args.model {
        Some(model) => {
            let model = if model.is_file() && model.extension().is_some_and(|e| e == "safetensors")
            {
                model.parent().unwrap_or(Path::new(".")).to_owned()
            } else {
                model.clone()
            };
            let stem = model
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned());
            (model.parent().map(Path::to_owned).unwrap_or_default(), stem)
        }
        None => (
            args.data.parent().map(Path::to_owned).unwrap_or_default(),
            "word-overlap".to_owned(),
        ),
    };
    base.join(format!("{name}.eval"))
}

fn write_report(folder: &Path, header: &Header, e: &Evaluation) -> Result<()> {
    super::replace_folder(folder, |temporary| {
        let put = |file: &str, text: String| super::write_file(&temporary.join(file), text);
        put("report.md", markdown(header, e))?;
        put(
            "report.json",
            serde_json::to_string_pretty(&json!({"header": header, "evaluation": e}))?,
        )?;
        put("pairs.tsv", pairs_tsv(e))?;
        let chance = e
            .languages
            .first()
            .map(|_| 0.5)
            .filter(|_| e.threshold.is_some());
        put(
            "accuracy.svg",
            plot::accuracy_bars(
                &format!("{}: zero-shot accuracy per language", header.model),
                &e.languages,
                chance,
            ),
        )?;
        if let Some(report) = e.smoothing.as_ref().filter(|r| r.settings.certify) {
            put("certified.svg", certified_plot(&header.model, report))?;
        }
        if let Some(m) = &e.matrix {
            let low = m
                .accuracy
                .iter()
                .flatten()
                .flatten()
                .copied()
                .fold(1.0, f64::min)
                .min(0.5);
            put(
                "matrix.svg",
                plot::matrix_heat_map(
                    &format!("{}: accuracy (%), sentence 1 x sentence 2", header.model),
                    m,
                    low,
                ),
            )?;
        }
        Ok(())
    })
}

/// Certified accuracy against the radius, one curve a language's test file
/// (and English dev).
fn certified_plot(model: &str, report: &xltc::evaluate::SmoothingReport) -> String {
    const COLOURS: [&str; 8] = [
        "#c33", "#36c", "#393", "#c6c", "#f90", "#099", "#663", "#999",
    ];
    let files: Vec<&xltc::evaluate::SmoothedFile> = report
        .files
        .iter()
        .filter(|f| f.languages.0 == f.languages.1)
        .collect();
    let curves: Vec<plot::Curve> = files
        .iter()
        .enumerate()
        .map(|(i, f)| plot::Curve {
            label: &f.file,
            colour: COLOURS[i % COLOURS.len()],
            points: f.certified.clone(),
        })
        .collect();
    plot::curves_on_one_scale(
        &format!(
            "{model}: certified accuracy (sigma {}, {} draws)",
            report.settings.sigma, report.settings.draws
        ),
        "L2 radius on the word embeddings",
        &curves,
        1.0,
    )
}

fn print_summary(args: &EvalArgs, e: &Evaluation, folder: &Path) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        for f in &e.files {
            let mut line = json!({
                "file": f.file,
                "pairs": f.pairs,
                "correct": f.correct,
                "accuracy": f.accuracy,
                "interval": [f.interval.0, f.interval.1],
            });
            if let Some(t) = e.threshold {
                line["threshold"] = json!(t);
            }
            if f.languages.0 == f.languages.1 {
                line["language"] = json!(f.languages.0);
            } else {
                line["languages"] = json!([f.languages.0, f.languages.1]);
            }
            if let Some(c) = e
                .consistency
                .iter()
                .find(|c| f.languages == (c.language.clone(), c.language.clone()))
            {
                line["consistency"] = json!(c);
            }
            if let Some(r) = e.robustness.as_ref().filter(|r| r.file == f.file) {
                line["robustness"] = json!(r);
            }
            writeln!(out, "{line}")?;
        }
        writeln!(
            out,
            "{}",
            json!({"averages": e.averages, "dev": e.dev, "threshold": e.threshold, "report": folder})
        )?;
        return Ok(());
    }
    writeln!(out, "decision: {}", e.decision)?;
    if let Some(dev) = &e.dev {
        writeln!(
            out,
            "dev-en: {:.1}% of {} pairs",
            100.0 * dev.accuracy,
            dev.pairs
        )?;
    }
    for f in &e.files {
        writeln!(
            out,
            "{:<18} {:>6} pairs  {:5.1}%  [{:.1}, {:.1}]",
            f.file,
            f.pairs,
            100.0 * f.accuracy,
            100.0 * f.interval.0,
            100.0 * f.interval.1
        )?;
    }
    let a = &e.averages;
    write!(out, "mean over languages {:.1}%", 100.0 * a.languages)?;
    if let Some(x) = a.languages_without_english {
        write!(out, ", without en {:.1}%", 100.0 * x)?;
    }
    if let (Some(m), Some(o)) = (a.matrix, a.matrix_off_diagonal) {
        write!(
            out,
            "; matrix {:.1}%, off the diagonal {:.1}%",
            100.0 * m,
            100.0 * o
        )?;
    }
    writeln!(out)?;
    if let Some(r) = &e.robustness {
        write!(
            out,
            "{}: clean {:.1}%, {} synonym draws {:.1}%, unchanged {:.1}%",
            r.file,
            100.0 * r.clean_accuracy,
            r.draws,
            100.0 * r.perturbed_accuracy,
            100.0 * r.unchanged
        )?;
        if let Some(w) = r.worst_of_k_accuracy {
            write!(out, ", worst of {} {:.1}%", r.draws, 100.0 * w)?;
        }
        writeln!(out)?;
    }
    for c in &e.consistency {
        write!(
            out,
            "{}: agrees with en on {:.1}% of {}",
            c.language,
            100.0 * c.agreement,
            c.shared_pairs
        )?;
        if let Some(al) = c.alignment {
            write!(out, ", alignment {al:.4}")?;
        }
        writeln!(out)?;
    }
    if let Some(s) = &e.smoothing {
        for f in &s.files {
            write!(
                out,
                "{}: smoothed, abstained on {} of {}",
                f.file, f.abstained, f.pairs
            )?;
            if let (Some(&(_, at_zero)), Some(&(r, at_sigma))) =
                (f.certified.first(), f.certified.get(4))
            {
                write!(
                    out,
                    ", certified {:.1}% (radius > 0), {:.1}% (radius >= {r})",
                    100.0 * at_zero,
                    100.0 * at_sigma
                )?;
            }
            writeln!(out)?;
        }
    }
    for note in &e.notes {
        writeln!(out, "note: {note}")?;
    }
    writeln!(out, "report: {}", folder.display())?;
    Ok(())
}
