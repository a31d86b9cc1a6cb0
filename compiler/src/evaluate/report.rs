//! The evaluation report a person reads: Markdown tables of accuracy per
//! language (with intervals and the gap to English), the language-pair
//! matrix, robustness under substitution and cross-lingual consistency.

use std::fmt::Write;

use serde::Serialize;

use super::Evaluation;

/// What was evaluated, where and how: the head of every report.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    pub model: String,
    pub data: String,
    pub on: String,
    pub command: String,
    pub max_pairs: Option<usize>,
    pub prefix: Option<String>,
}

fn percent(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn optional_percent(x: Option<f64>) -> String {
    x.map_or("–".into(), percent)
}

pub fn markdown(header: &Header, e: &Evaluation) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Zero-shot evaluation of {}\n", header.model);
    let _ = writeln!(w, "- data: `{}`", header.data);
    let _ = writeln!(w, "- run on: {}", header.on);
    let _ = writeln!(w, "- decision: {}", e.decision);
    if let Some(dev) = &e.dev {
        let _ = writeln!(
            w,
            "- English dev accuracy: {}% ({} pairs)",
            percent(dev.accuracy),
            dev.pairs
        );
    }
    if let Some(n) = header.max_pairs {
        let _ = writeln!(w, "- at most {n} pairs a file: those with the smallest ids");
    }
    if let Some(prefix) = &header.prefix {
        let _ = writeln!(w, "- every sentence prefixed with {prefix:?}");
    }
    let _ = writeln!(
        w,
        "- {} sequences in {:.1} s; command: `{}`\n",
        e.sequences, e.seconds, header.command
    );
    let _ = writeln!(w, "## Accuracy per language\n");
    let _ = writeln!(
        w,
        "| language | pairs | accuracy (%) | 95% interval | gap to en |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | --- | ---: |");
    for l in &e.languages {
        let gap = l
            .gap_to_english
            .map_or("–".into(), |g| format!("{:+.1}", 100.0 * g));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {}–{} | {gap} |",
            l.language,
            l.pairs,
            percent(l.accuracy),
            percent(l.interval.0),
            percent(l.interval.1)
        );
    }
    let a = &e.averages;
    let _ = writeln!(
        w,
        "\nMean over languages: {}%; without English: {}%.",
        percent(a.languages),
        optional_percent(a.languages_without_english)
    );
    if let Some(m) = &e.matrix {
        let _ = writeln!(w, "\n## Generalized setting (sentence 1 in the row's language, sentence 2 in the column's)\n");
        let _ = writeln!(w, "| 1 \\ 2 | {} |", m.languages.join(" | "));
        let _ = writeln!(w, "| --- |{}", " ---: |".repeat(m.languages.len()));
        for (a, row) in m.languages.iter().zip(&m.accuracy) {
            let cells: Vec<String> = row.iter().map(|c| optional_percent(*c)).collect();
            let _ = writeln!(w, "| **{a}** | {} |", cells.join(" | "));
        }
        let _ = writeln!(
            w,
            "\nMatrix mean: {}%; without the diagonal: {}%.",
            optional_percent(a.matrix),
            optional_percent(a.matrix_off_diagonal)
        );
    }
    if let Some(r) = &e.robustness {
        let _ = writeln!(w, "\n## Robustness to synonym substitution ({})\n", r.file);
        let _ = writeln!(
            w,
            "{} pairs, {} draws each (seed {}), synonym sets {}; {}% of words replaced.\n",
            r.pairs,
            r.draws,
            r.seed,
            r.synonyms,
            percent(r.words_replaced)
        );
        let _ = writeln!(w, "| clean (%) | random substitution (%) | prediction never changes (%) | worst of {} (%) |", r.draws);
        let _ = writeln!(w, "| ---: | ---: | ---: | ---: |");
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            percent(r.clean_accuracy),
            percent(r.perturbed_accuracy),
            percent(r.unchanged),
            optional_percent(r.worst_of_k_accuracy)
        );
    }
    if !e.consistency.is_empty() {
        let _ = writeln!(
            w,
            "\n## Cross-lingual consistency (against the English original of each example)\n"
        );
        let _ = writeln!(w, "Agreement: share of examples predicted as their English original; alignment: mean cosine of the sentence embeddings of an English sentence and of its translation (for a classifier, the mean of its last hidden states over real tokens, each sentence run alone). Substituted and attacked: every example's English original is substituted (K draws); attacked: its draw of highest loss against the English gold class; alignment, worst draw: its draw of lowest alignment with the translation, an attack on the alignment itself. Retrieval: the share of sentences whose English original is nearer its own translation than every other translation of the file's shared examples (a cosine near 1 says little when non-translations are as near), clean and on the draw of lowest alignment.\n");
        let _ = writeln!(w, "| language | examples | agreement (%) | alignment | examples substituted | agreement, substituted en (%) | alignment, substituted en | agreement, attacked en (%) | alignment, attacked en | alignment, worst draw | retrieval (%) | retrieval, worst draw (%) |");
        let _ = writeln!(
            w,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let cos = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.4}"));
        for c in &e.consistency {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.language,
                c.shared_pairs,
                percent(c.agreement),
                cos(c.alignment),
                c.perturbed_pairs.map_or("–".into(), |n| n.to_string()),
                optional_percent(c.perturbed_agreement),
                cos(c.perturbed_alignment),
                optional_percent(c.attacked_agreement),
                cos(c.attacked_alignment),
                cos(c.worst_alignment),
                optional_percent(c.retrieval),
                optional_percent(c.worst_retrieval)
            );
        }
    }
    if let Some(sm) = &e.smoothing {
        let st = &sm.settings;
        let _ = writeln!(w, "\n## Randomized smoothing\n");
        let _ = writeln!(
            w,
            "{} noise draws an input on the word embeddings ({:?}, sigma {}, seed {}); the prediction abstains unless the top class beats the runner-up at p <= {}, and an abstention counts as wrong.{}\n",
            st.draws,
            st.law,
            st.sigma,
            st.seed,
            st.alpha,
            if st.certify {
                " Certified: another set of draws bounds the top class's probability (one-sided Clopper-Pearson at the same alpha); the L2 radius is sigma times the normal quantile of that bound (Cohen et al., 2019)."
            } else {
                ""
            }
        );
        let radii: Vec<f64> = sm
            .files
            .first()
            .map(|f| {
                [0, 2, 4, 8]
                    .iter()
                    .filter_map(|&k| f.certified.get(k))
                    .map(|c| c.0)
                    .collect()
            })
            .unwrap_or_default();
        let heads: String = radii
            .iter()
            .map(|r| format!(" certified at r = {r} (%) |"))
            .collect();
        let _ = writeln!(w, "| file | pairs | abstained (%) |{heads}");
        let _ = writeln!(w, "| --- | ---: | ---: |{}", " ---: |".repeat(radii.len()));
        for f in &sm.files {
            let cells: String = [0, 2, 4, 8]
                .iter()
                .filter_map(|&k| f.certified.get(k))
                .map(|c| format!(" {} |", percent(c.1)))
                .collect();
            let _ = writeln!(
                w,
                "| {} | {} | {} |{cells}",
                f.file,
                f.pairs,
                percent(f.abstained as f64 / f.pairs.max(1) as f64)
            );
        }
    }
    if !e.notes.is_empty() {
        let _ = writeln!(w, "\n## Notes\n");
        for note in &e.notes {
            let _ = writeln!(w, "- {note}");
        }
    }
    let _ = writeln!(
        w,
        "\nPlots: [accuracy per language](accuracy.svg){}{}",
        if e.matrix.is_some() {
            ", [language-pair matrix](matrix.svg)"
        } else {
            ""
        },
        if e.smoothing.as_ref().is_some_and(|s| s.settings.certify) {
            ", [certified accuracy](certified.svg)"
        } else {
            ""
        }
    );
    md
}

/// pairs.tsv: one row a test pair (file, id, gold and predicted class; on
/// the English test the classes under each substitution, comma-separated,
/// and under the worst-of-K draw; on a translation its English original's
/// class and the alignment with it, clean, attacked and under the draw of
/// lowest alignment, and how many of its two sentences the original's
/// retrieve, clean and under that draw). An empty cell: not measured for
/// that pair.
pub fn pairs_tsv(e: &Evaluation) -> String {
    let mut tsv = String::from(
        "file\tid\tgold\tpredicted\tsubstituted\tworst\tenglish\tenglish_attacked\talignment\talignment_attacked\talignment_worst\tretrieved\tretrieved_worst\n",
    );
    let class = |c: Option<usize>| c.map_or(String::new(), |c| c.to_string());
    let count = |c: Option<u8>| c.map_or(String::new(), |c| c.to_string());
    let cosine = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.6}"));
    for r in &e.pairs {
        let substituted: Vec<String> = r.substituted.iter().map(usize::to_string).collect();
        let _ = writeln!(
            tsv,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.file,
            r.id,
            r.gold,
            r.predicted,
            substituted.join(","),
            class(r.worst),
            class(r.english),
            class(r.english_attacked),
            cosine(r.alignment),
            cosine(r.alignment_attacked),
            cosine(r.alignment_worst),
            count(r.retrieved),
            count(r.retrieved_worst)
        );
    }
    tsv
}
