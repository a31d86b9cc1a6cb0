//! `xltc train`: fine-tunes a sequence-pair classifier with the public
//! recipe, on the GPU (or with --cpu on the CPU reference). Every line of the data is checked
//! before the first step; checkpoints are Hugging Face model folders, each
//! written to a temporary folder and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use xltc::frontend::{Family, Model, ModelOutput};
use xltc::plot;

use xltc::ir::AlignmentLoss;
use xltc::train::augment::{augment, code_switch, Row};
use xltc::train::method::{
    Adversarial, AlignLossKind, Augmentation, Law, Method, MethodKind, Noise, Norm, Parallel, Start,
};
use xltc::train::programs::Parameter;
use xltc::train::{encode, Example, Settings, Trainer};
use xltc_runtime::artifact::Training;
use xltc_runtime::pairs::label_index;
use xltc_runtime::{Encoding, Overflow, PairFile, SplitMix64, SynonymSets, TextTokenizer};

use super::progress::Progress;
use clap::ValueEnum;

use crate::TrainArgs;

/// What a run is: recorded in OUT/state/state.json, so that `--resume OUT`
/// needs nothing else.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunSpec {
    model: PathBuf,
    train: PathBuf,
    dev: Option<PathBuf>,
    output: PathBuf,
    settings: Settings,
    save_every: usize,
    /// On the CPU reference, not the GPU (a run resumes where it ran).
    #[serde(default = "before_gpu_training")]
    cpu: bool,
    /// RS-DA's augmented set is also written here.
    #[serde(default)]
    write_augmented: Option<PathBuf>,
}

/// States saved before GPU training existed are all from CPU runs.
fn before_gpu_training() -> bool {
    true
}

/// Where a run stands after an optimizer step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Position {
    step: usize,
    epoch: usize,
    /// Accumulation groups of `epoch` done.
    group: usize,
    best: Option<f64>,
    losses: Vec<(usize, f64)>,
    evaluations: Vec<(usize, f64)>,
}

#[derive(Serialize, Deserialize)]
struct State {
    run: RunSpec,
    position: Position,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let (run, (model, stored), saved) = match &args.resume {
        Some(out) => {
            let (state, tensors) = read_state(out)?;
            let model = load(&state.run.model)?;
            (state.run, model, Some((state.position, tensors)))
        }
        None => {
            let (run, model) = run_spec(&args)?;
            (run, model, None)
        }
    };
    execute(&run, &model, stored, saved)
}

/// MODEL as the trainer takes it: a model folder, or a compiled artifact,
/// with the training programs `xltc compile --training` stored in it.
fn load(path: &Path) -> Result<(Model, Option<Training>)> {
    let (model, manifest) = super::open_model(path)?;
    Ok((model, manifest.and_then(|m| m.training)))
}

/// The run the arguments ask for, and the classifier it trains (with the
/// programs an artifact stores): MODEL, or OUT/init, MODEL with a new head,
/// when MODEL has none.
fn run_spec(args: &TrainArgs) -> Result<(RunSpec, (Model, Option<Training>))> {
    if args.batch == 0 || args.accum == 0 || args.eval_every == 0 || args.save_every == Some(0) {
        bail!("--batch, --accum, --eval-every and --save-every must be at least 1");
    }
    let (Some(model), Some(train), Some(output)) = (&args.model, &args.train, &args.output) else {
        bail!("give MODEL, --train and -o OUT, or --resume OUT");
    };
    let settings = Settings {
        epochs: args.epochs,
        max_steps: args.max_steps,
        batch: args.batch,
        accumulation: args.accum,
        lr: args.lr,
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        clip: args.clip,
        max_len: args.max_len,
        seed: args.seed,
        eval_every: args.eval_every,
        dropout: !args.no_dropout,
        method: method(args)?,
        parallel: parallel(args)?,
    };
    let run = RunSpec {
        model: model.clone(),
        train: train.clone(),
        dev: args.dev.clone(),
        output: output.clone(),
        settings,
        save_every: args.save_every.unwrap_or(args.eval_every),
        cpu: args.cpu,
        write_augmented: args.write_augmented.clone(),
    };
    let (model, stored) = load(&run.model)?;
    if model.output == ModelOutput::Classification {
        if let Some(given) = args.labels.as_ref().filter(|l| **l != model.config.labels) {
            bail!(
                "--labels {} differ from the model's head ({}); give the model's labels",
                given.join(","),
                model.config.labels.join(",")
            );
        }
        return Ok((run, (model, stored)));
    }
    let Some(labels) = &args.labels else {
        bail!(
            "{}: has no classification head; give --labels (e.g. 0,1) and a new head is \
             initialised",
            run.model.display()
        );
    };
    let init = output.join("init");
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    with_new_head(&model, labels, args.seed, &init)?;
    eprintln!(
        "xltc: {} has no head; a new {}-label head is in {}",
        run.model.display(),
        labels.len(),
        init.display()
    );
    let model = Model::load(&init)?;
    Ok((RunSpec { model: init, ..run }, (model, None)))
}

/// The method `--method` names, with its flags; a flag of another method,
/// or a setting out of its range, is an error.
fn method(args: &TrainArgs) -> Result<Method> {
    let given = |flags: &[(&str, bool)], kind: MethodKind| -> Result<()> {
        for (flag, set) in flags {
            if *set && args.method != kind {
                bail!(
                    "{flag} is a setting of --method {}",
                    kind.to_possible_value().expect("named").get_name()
                );
            }
        }
        Ok(())
    };
    given(
        &[
            ("--synonyms", args.synonyms.is_some()),
            ("--copies", args.copies.is_some()),
            ("--augment-seed", args.augment_seed.is_some()),
            ("--ignore-case", args.ignore_case),
            ("--every-epoch", args.every_epoch),
            ("--keep-original", args.keep_original),
            ("--write-augmented", args.write_augmented.is_some()),
        ],
        MethodKind::RsDa,
    )?;
    given(
        &[
            ("--adv-eps", args.adv_eps.is_some()),
            ("--adv-step", args.adv_step.is_some()),
            ("--adv-steps", args.adv_steps.is_some()),
            ("--adv-norm", args.adv_norm.is_some()),
            ("--adv-init", args.adv_init.is_some()),
            ("--adv-clean-weight", args.adv_clean_weight.is_some()),
        ],
        MethodKind::Adv,
    )?;
    given(
        &[
            ("--noise", args.noise.is_some()),
            ("--sigma", args.sigma.is_some()),
        ],
        MethodKind::RsRp,
    )?;
    let positive = |flag: &str, value: f64| -> Result<f64> {
        if !(value.is_finite() && value > 0.0) {
            bail!("{flag} must be a positive number (got {value})");
        }
        Ok(value)
    };
    Ok(match args.method {
        MethodKind::Vanilla => Method::Vanilla,
        MethodKind::RsDa => {
            let copies = args.copies.unwrap_or(10);
            if copies == 0 {
                bail!("--copies must be at least 1");
            }
            Method::RsDa(Augmentation {
                synonyms: args.synonyms.clone(),
                copies,
                seed: args.augment_seed.unwrap_or(args.seed),
                ignore_case: args.ignore_case,
                every_epoch: args.every_epoch,
                keep_original: args.keep_original,
            })
        }
        MethodKind::Adv => {
            let clean_weight = args.adv_clean_weight.unwrap_or(0.5);
            if !(0.0..1.0).contains(&clean_weight) {
                bail!("--adv-clean-weight must be in [0, 1) (got {clean_weight}); 1 is --method vanilla");
            }
            let steps = args.adv_steps.unwrap_or(3);
            if steps == 0 {
                bail!("--adv-steps must be at least 1");
            }
            Method::Adv(Adversarial {
                eps: positive("--adv-eps", args.adv_eps.unwrap_or(0.5))?,
                step: positive("--adv-step", args.adv_step.unwrap_or(0.2))?,
                steps,
                norm: args.adv_norm.unwrap_or(Norm::L2Token),
                init: args.adv_init.unwrap_or(Start::Zero),
                clean_weight,
            })
        }
        MethodKind::RsRp => Method::RsRp(Noise {
            law: args.noise.unwrap_or(Law::Gaussian),
            sigma: positive("--sigma", args.sigma.unwrap_or(0.02))?,
        }),
    })
}

/// How the parallel files are used, if any are given.
fn parallel(args: &TrainArgs) -> Result<Option<Parallel>> {
    if args.parallel.is_empty() {
        if args.align_weight.is_some()
            || args.code_switch.is_some()
            || args.align_attack
            || args.align_loss.is_some()
            || args.align_temperature.is_some()
        {
            bail!(
                "--align-weight, --align-loss, --align-temperature, --align-attack and \
                 --code-switch use parallel data: give --parallel FILE..."
            );
        }
        return Ok(None);
    }
    let (align_weight, code_switch) = (
        args.align_weight.unwrap_or(0.0),
        args.code_switch.unwrap_or(0.0),
    );
    if !(align_weight.is_finite() && align_weight >= 0.0) {
        bail!("--align-weight must be 0 or more (got {align_weight})");
    }
    if !(0.0..=1.0).contains(&code_switch) {
        bail!("--code-switch is a chance, in [0, 1] (got {code_switch})");
    }
    if align_weight == 0.0 && code_switch == 0.0 {
        bail!("--parallel needs a use: --align-weight W and/or --code-switch P");
    }
    if args.align_attack && (align_weight == 0.0 || !matches!(args.method, MethodKind::Adv)) {
        bail!(
            "--align-attack attacks the alignment term with the adversarial method's ascent: \
             it needs --align-weight W and --method adv"
        );
    }
    if align_weight == 0.0 && (args.align_loss.is_some() || args.align_temperature.is_some()) {
        bail!("--align-loss and --align-temperature set the alignment term: give --align-weight W");
    }
    let kind = args.align_loss.unwrap_or(AlignLossKind::Cosine);
    if args.align_temperature.is_some() && kind != AlignLossKind::Contrastive {
        bail!("--align-temperature is the contrastive term's: give --align-loss contrastive");
    }
    let align_loss = match kind {
        AlignLossKind::Cosine => AlignmentLoss::Cosine,
        AlignLossKind::SymmetricKl => AlignmentLoss::SymmetricKl,
        AlignLossKind::Contrastive => {
            let temperature = args.align_temperature.unwrap_or(0.05);
            if !(temperature.is_finite() && temperature > 0.0) {
                bail!("--align-temperature must be above 0 (got {temperature})");
            }
            AlignmentLoss::Contrastive { temperature }
        }
    };
    Ok(Some(Parallel {
        files: args.parallel.clone(),
        align_weight,
        code_switch,
        align_attack: args.align_attack,
        align_loss,
    }))
}

/// Parallel lines (an English text, a tab, its translation), every file's;
/// a line without exactly one tab names its file and line.
fn read_parallel(files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut lines = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != 2 || fields.iter().any(|f| f.trim().is_empty()) {
                bail!(
                    "{} line {}: not an English text and its translation separated by one tab",
                    path.display(),
                    number + 1
                );
            }
            lines.push((fields[0].to_owned(), fields[1].to_owned()));
        }
    }
    Ok(lines)
}

/// Each English text of `lines` (English text, translation) and its
/// translations.
fn translations(lines: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut translations: HashMap<String, Vec<String>> = HashMap::new();
    for (english, other) in lines {
        translations
            .entry(english.clone())
            .or_default()
            .push(other.clone());
    }
    translations
}

/// The symmetric-KL term's pairs: each training pair (as the file has it)
/// with a sentence in `lines`, and the same pair with every such sentence
/// replaced by one of its translations (a uniform draw, once, from `seed`).
fn translated_pairs(
    tokenizer: &TextTokenizer,
    rows: &[Row],
    lines: &[(String, String)],
    seed: u64,
) -> Result<Vec<(Encoding, Encoding)>> {
    let switched = code_switch(rows, &translations(lines), 1.0, seed ^ 0x4B4C_0000);
    let (original, translated): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .zip(switched)
        .filter(|(a, b)| (&a.0, &a.1) != (&b.0, &b.1))
        .unzip();
    if original.is_empty() {
        bail!("--align-loss symmetric-kl: no training pair has a sentence in the --parallel files");
    }
    eprintln!(
        "xltc: the symmetric-KL term: {} of {} training pairs have a translated version",
        original.len(),
        rows.len()
    );
    let (original, translated) = (
        encode(tokenizer, &original)?,
        encode(tokenizer, &translated)?,
    );
    Ok(original
        .into_iter()
        .zip(translated)
        .map(|(a, b)| (a.encoding, b.encoding))
        .collect())
}

/// The synonym sets RS-DA draws from.
fn synonym_sets(settings: &Augmentation) -> Result<SynonymSets> {
    Ok(match &settings.synonyms {
        None => SynonymSets::counterfitted(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            SynonymSets::from_json(&path.display().to_string(), &text)?
        }
    })
}

/// The training pairs of each epoch: the file's, or RS-DA's copies of them.
struct TrainingSet {
    rows: Vec<Row>,
    /// Each row's label as the file spells it.
    labels: Vec<String>,
    augmentation: Option<(Augmentation, SynonymSets)>,
}

impl TrainingSet {
    fn read(path: &Path, labels: &[String], method: &Method) -> Result<Self> {
        let rows = read_rows(path, labels)?;
        let labels = PairFile::read(path)?
            .pairs
            .into_iter()
            .map(|p| p.label)
            .collect();
        let augmentation = match method {
            Method::RsDa(settings) => Some((settings.clone(), synonym_sets(settings)?)),
            _ => None,
        };
        Ok(Self {
            rows,
            labels,
            augmentation,
        })
    }

    /// Code-switching: each sentence found in `lines` (English text, its
    /// translation) becomes a translation with chance `p`, drawn from `seed`.
    fn code_switch(&mut self, lines: &[(String, String)], p: f64, seed: u64) {
        self.rows = code_switch(&self.rows, &translations(lines), p, seed);
    }

    fn rows(&self, epoch: usize) -> Vec<Row> {
        match &self.augmentation {
            None => self.rows.clone(),
            Some((settings, sets)) => augment(&self.rows, settings, sets, epoch),
        }
    }

    /// Whether `epoch` trains on other pairs than the epoch before.
    fn changes_at(&self, epoch: usize) -> bool {
        epoch > 0
            && self
                .augmentation
                .as_ref()
                .is_some_and(|(s, _)| s.every_epoch)
    }
}

/// Writes RS-DA's `rows` as a three-column TSV (sentence1, sentence2,
/// label), each label as the training file spells it, so the file can be
/// compared with the public code's augmented data line by line.
fn write_rows(path: &Path, rows: &[Row], source: &TrainingSet) -> Result<()> {
    let per_row = rows.len() / source.rows.len().max(1);
    let mut text = String::new();
    for (i, (a, b, _, _)) in rows.iter().enumerate() {
        text.push_str(&format!(
            "{a}\t{b}\t{}\n",
            source.labels[i / per_row.max(1)]
        ));
    }
    super::write_atomically(path, text.as_bytes())
}

fn execute(
    run: &RunSpec,
    model: &Model,
    stored: Option<Training>,
    saved: Option<(Position, Tensors)>,
) -> Result<()> {
    let settings = &run.settings;
    if model.output != ModelOutput::Classification {
        bail!(
            "{}: has no classification head to train",
            run.model.display()
        );
    }
    let labels = model.config.labels.clone();
    let max_len = settings.max_len.min(model.max_tokens());
    let tokenizer = TextTokenizer::from_json(&model.tokenizer_json, &model.origin, max_len)?;
    let parallel_lines = match &settings.parallel {
        Some(p) => read_parallel(&p.files)?,
        None => Vec::new(),
    };
    let mut training_set = TrainingSet::read(&run.train, &labels, &settings.method)?;
    // The alignment term's rows (for the head's term, the file's pairs
    // before code-switching), before anything is written.
    let term = settings.parallel.as_ref().filter(|p| p.align_weight > 0.0);
    let aligned = match term {
        None => Vec::new(),
        Some(p) if p.align_loss.on_head() => translated_pairs(
            &tokenizer,
            &training_set.rows,
            &parallel_lines,
            settings.seed,
        )?,
        Some(_) => parallel_lines
            .iter()
            .map(|(english, other)| {
                let one = |text: &str| {
                    tokenizer
                        .encode(text, None, Overflow::Truncate)
                        .with_context(|| format!("the parallel line {english:?}"))
                };
                Ok((one(english)?, one(other)?))
            })
            .collect::<Result<_>>()?,
    };
    if let Some(p) = settings.parallel.as_ref().filter(|p| p.code_switch > 0.0) {
        training_set.code_switch(&parallel_lines, p.code_switch, settings.seed);
    }
    let first = training_set.rows(saved.as_ref().map_or(0, |(p, _)| p.epoch));
    if let Some(path) = &run.write_augmented {
        write_rows(path, &training_set.rows(0), &training_set)?;
    }
    let mut train = encode(&tokenizer, &first)?;
    let dev = match &run.dev {
        Some(path) => Some(encode(&tokenizer, &read_rows(path, &labels)?)?),
        None => None,
    };
    let out = &run.output;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut trainer = if run.cpu {
        Trainer::new(model, settings.clone())?
    } else {
        let with_programs = stored.is_some();
        Trainer::on_gpu_with(model, settings.clone(), stored).with_context(|| {
            if with_programs {
                format!(
                    "{}: cannot train on the GPU with the programs it stores (compile it \
                     with this run's --no-dropout and --weight-decay, train from the model \
                     folder, or --cpu)",
                    run.model.display()
                )
            } else {
                "cannot train on the GPU; --cpu trains on the CPU reference".to_owned()
            }
        })?
    };
    trainer.parallel = aligned;
    let mut position = Position::default();
    let log_path = out.join("log.jsonl");
    match saved {
        Some((at, tensors)) => {
            restore(&mut trainer, &tensors, at.step)?;
            trainer.upload()?;
            keep_log_until(&log_path, at.step)?;
            eprintln!("xltc: resuming {} at step {}", out.display(), at.step);
            position = at;
        }
        None => {
            let header = json!({"settings": settings, "model": run.model, "train": run.train,
                                "dev": run.dev, "labels": labels});
            super::write_atomically(&log_path, format!("{header}\n").as_bytes())?;
        }
    }
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let total = trainer.total_steps(train.len());
    let device = trainer
        .adapter()
        .unwrap_or_else(|| "the CPU reference".to_owned());
    eprintln!(
        "xltc: training {} on {} pairs for {total} optimizer steps on {device}",
        model.name,
        train.len()
    );
    let mut progress = Progress::new("train", "steps");
    let group_size = settings.batch * settings.accumulation;
    'epochs: for epoch in position.epoch..settings.epochs {
        if epoch != position.epoch && training_set.changes_at(epoch) {
            train = encode(&tokenizer, &training_set.rows(epoch))?;
        }
        let order = trainer.epoch_order(train.len(), epoch);
        let skip = if epoch == position.epoch {
            position.group
        } else {
            0
        };
        for (index, group) in order.chunks(group_size).enumerate().skip(skip) {
            if trainer.step >= total {
                break 'epochs;
            }
            let examples: Vec<&Example> = group.iter().map(|&i| &train[i]).collect();
            let record = trainer.train_step(&examples, epoch, total)?;
            let mut line = serde_json::to_value(&record)?;
            let last = trainer.step == total;
            if let Some(dev) = &dev {
                if trainer.step % settings.eval_every == 0 || last {
                    let accuracy = trainer.accuracy(dev)?;
                    line["dev_accuracy"] = json!(accuracy);
                    position.evaluations.push((trainer.step, accuracy));
                    // The public code keeps the checkpoint that strictly beats the best so far.
                    if position.best.is_none_or(|b| accuracy > b) {
                        position.best = Some(accuracy);
                        trainer.sync()?;
                        save_model(model, &trainer.params, settings, &out.join("best"))?;
                    }
                }
            }
            writeln!(log, "{line}")
                .with_context(|| format!("cannot write {}", log_path.display()))?;
            position.losses.push((record.step, record.loss));
            (position.step, position.epoch, position.group) = (trainer.step, epoch, index + 1);
            if trainer.step % run.save_every == 0 || last {
                trainer.sync()?;
                save_state(run, &position, &trainer)?;
            }
            progress.update(trainer.step, total, 1.0);
        }
    }
    trainer.sync()?;
    save_model(model, &trainer.params, settings, &out.join("last"))?;
    let losses: Vec<(f64, f64)> = position
        .losses
        .iter()
        .map(|&(s, l)| (s as f64, l))
        .collect();
    let accuracies: Vec<(f64, f64)> = position
        .evaluations
        .iter()
        .map(|&(s, a)| (s as f64, a))
        .collect();
    let svg = plot::curves(
        &format!("{}: training loss and English dev accuracy", model.name),
        "optimizer step",
        &[
            plot::Curve {
                label: "training loss",
                colour: "#c33",
                points: losses,
            },
            plot::Curve {
                label: "dev accuracy",
                colour: "#36c",
                points: accuracies,
            },
        ],
    );
    super::write_atomically(&out.join("loss.svg"), svg.as_bytes())?;
    let first = position.losses.first().map_or(0.0, |r| r.1);
    let final_loss = position.losses.last().map_or(0.0, |r| r.1);
    println!("trained {total} steps: loss {first:.4} -> {final_loss:.4}");
    if let (Some(&(_, accuracy)), Some(best)) = (position.evaluations.last(), position.best) {
        println!(
            "dev accuracy: last {:.1}%, best {:.1}%",
            100.0 * accuracy,
            100.0 * best
        );
    }
    println!("checkpoints: {}", out.display());
    Ok(())
}

/// (name, shape, data) of f32 tensors, as a state file holds them.
type Tensors = Vec<Parameter>;

/// OUT/state/: state.json and tensors.safetensors (param.NAME, m.NAME,
/// v.NAME), swapped in by `replace_folder`, which keeps the old state as
/// state.old until the new one is in place.
fn save_state(run: &RunSpec, position: &Position, trainer: &Trainer) -> Result<()> {
    let mut tensors: Tensors = Vec::new();
    for ((name, shape, data), (m, v)) in trainer.params.iter().zip(&trainer.moments) {
        tensors.push((format!("param.{name}"), shape.clone(), data.clone()));
        tensors.push((format!("m.{name}"), shape.clone(), m.clone()));
        tensors.push((format!("v.{name}"), shape.clone(), v.clone()));
    }
    let state = State {
        run: run.clone(),
        position: position.clone(),
    };
    let folder = run.output.join("state");
    super::replace_folder(&folder, |temporary| {
        let tensors_file = temporary.join("tensors.safetensors");
        super::write_file(&tensors_file, serialize(&tensors)?)?;
        let json = serde_json::to_string_pretty(&state)?;
        super::write_file(&temporary.join("state.json"), json)?;
        Ok(())
    })
    .with_context(|| format!("cannot save the training state in {}", folder.display()))
}

/// The last saved state of OUT: state/, or state.old/ when a save was cut
/// off between its two renames.
fn read_state(out: &Path) -> Result<(State, Tensors)> {
    let folder = [out.join("state"), out.join("state.old")]
        .into_iter()
        .find(|f| f.join("state.json").is_file())
        .with_context(|| {
            format!(
                "{}: no saved training state (state/state.json) to resume",
                out.display()
            )
        })?;
    let text = std::fs::read_to_string(folder.join("state.json"))?;
    let state: State = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a training state", folder.display()))?;
    let bytes = std::fs::read(folder.join("tensors.safetensors"))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: corrupt tensors.safetensors", folder.display()))?;
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, view.shape().to_vec(), data)
        })
        .collect();
    Ok((state, tensors))
}

fn restore(trainer: &mut Trainer, tensors: &Tensors, step: usize) -> Result<()> {
    let find = |name: String| -> Result<Vec<f32>> {
        tensors
            .iter()
            .find(|t| t.0 == name)
            .map(|t| t.2.clone())
            .with_context(|| format!("the saved state lacks {name}"))
    };
    for ((name, _, data), (m, v)) in trainer.params.iter_mut().zip(&mut trainer.moments) {
        *data = find(format!("param.{name}"))?;
        *m = find(format!("m.{name}"))?;
        *v = find(format!("v.{name}"))?;
    }
    trainer.step = step;
    Ok(())
}

/// Drops log lines of steps after `step` (written after the last saved
/// state by a run that was then interrupted).
fn keep_log_until(path: &Path, step: usize) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_none_or(|s| s as usize <= step)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    super::write_atomically(path, kept.as_bytes())
}

fn serialize(tensors: &[Parameter]) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(data))
                .expect("shape and data agree");
            (name.clone(), view)
        })
        .collect();
    // transformers reads a safetensors file only with format "pt" in its metadata.
    let metadata = std::collections::HashMap::from([("format".to_owned(), "pt".to_owned())]);
    Ok(safetensors::tensor::serialize(views, Some(metadata))?)
}

/// A pair file's pairs with their labels as class numbers; a label the
/// model does not have names the file and line, before any training.
fn read_rows(path: &Path, labels: &[String]) -> Result<Vec<Row>> {
    let file = PairFile::read(path)?;
    let mut rows = Vec::new();
    for pair in &file.pairs {
        let Some(class) = label_index(labels, &pair.label) else {
            bail!(
                "{} line {}: label {:?} is not one of the model's labels ({})",
                path.display(),
                pair.line,
                pair.label,
                labels.join(", ")
            );
        };
        let origin = format!("{} line {}", path.display(), pair.line);
        rows.push((
            pair.sentence1.clone(),
            pair.sentence2.clone(),
            class as u32,
            origin,
        ));
    }
    Ok(rows)
}

/// A Hugging Face model folder with the trained parameters (the tensor names
/// of the checkpoint it came from), config.json and tokenizer.json.
fn save_model(
    model: &Model,
    params: &[Parameter],
    settings: &Settings,
    folder: &Path,
) -> Result<()> {
    let mut config: serde_json::Value = serde_json::from_str(&model.config_json)?;
    // How the checkpoint was made: the method and every setting of the run.
    config["xltc_training"] = serde_json::to_value(settings)?;
    write_model_folder(
        folder,
        params,
        config,
        &model.config.labels,
        &model.tokenizer_json,
    )
}

/// Writes a model folder with `replace_folder`; the config gets `labels` as
/// id2label and label2id.
fn write_model_folder(
    folder: &Path,
    tensors: &[Parameter],
    mut config: serde_json::Value,
    labels: &[String],
    tokenizer_json: &str,
) -> Result<()> {
    let weights = serialize(tensors)?;
    config["id2label"] = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), json!(l)))
        .collect();
    config["label2id"] = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), json!(i)))
        .collect();
    super::replace_folder(folder, |temporary| {
        super::write_file(&temporary.join("model.safetensors"), &weights)?;
        let json = serde_json::to_string_pretty(&config)?;
        super::write_file(&temporary.join("config.json"), json)?;
        super::write_file(&temporary.join("tokenizer.json"), tokenizer_json)
    })
}

/// An encoder without a head made into a sequence classifier, as
/// transformers initialises one: the checkpoint's tensors under the
/// classifier's prefix ("bert." or "roberta."), and a new head (BERT's pooler
/// where the checkpoint has none, and classifier; XLM-R's classifier.dense
/// and out_proj) drawn from a normal law of std initializer_range, biases
/// zero. Written as OUT/init, the model the run trains.
fn with_new_head(model: &Model, labels: &[String], seed: u64, folder: &Path) -> Result<()> {
    let mut config: serde_json::Value = serde_json::from_str(&model.config_json)?;
    let std = config["initializer_range"].as_f64().unwrap_or(0.02);
    let (hidden, n) = (model.config.hidden, labels.len());
    let (prefix, architecture, head) = match model.config.family {
        Family::Bert => (
            xltc::frontend::bert::PREFIX,
            "BertForSequenceClassification",
            vec![("bert.pooler.dense", hidden), ("classifier", n)],
        ),
        Family::Roberta => (
            xltc::frontend::xlm_roberta::PREFIX,
            "XLMRobertaForSequenceClassification",
            vec![("classifier.dense", hidden), ("classifier.out_proj", n)],
        ),
    };
    let checkpoint = model.checkpoint();
    let mut tensors: Vec<Parameter> = checkpoint
        .names()
        .map(|name| {
            let t = checkpoint.tensor(name);
            let renamed = if name.starts_with(prefix) {
                name.to_owned()
            } else {
                format!("{prefix}{name}")
            };
            (renamed, t.shape.clone(), t.data.to_vec())
        })
        .collect();
    let mut rng = SplitMix64::new(seed);
    let mut normal = || {
        // Box-Muller from two uniforms in (0, 1]: [0, 1) moved up by 2^-53,
        // which is exact, so that the logarithm never sees 0.
        let u = |r: &mut SplitMix64| r.next_f64() + f64::EPSILON / 2.0;
        let (a, b) = (u(&mut rng), u(&mut rng));
        ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos() * std) as f32
    };
    for (name, rows) in head {
        let weight = format!("{name}.weight");
        if tensors.iter().any(|t| t.0 == weight) {
            continue; // a pooler the encoder was trained with is kept
        }
        tensors.push((
            weight,
            vec![rows, hidden],
            (0..rows * hidden).map(|_| normal()).collect(),
        ));
        tensors.push((format!("{name}.bias"), vec![rows], vec![0.0; rows]));
    }
    config["architectures"] = json!([architecture]);
    write_model_folder(folder, &tensors, config, labels, &model.tokenizer_json)
}
