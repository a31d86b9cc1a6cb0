#!/usr/bin/env python3
"""Puts the evaluation reports of the robust-training experiment side by
side (benches/robust_experiment.sh): reads OUT/METHOD/eval/report.json and
OUT/METHOD/log.jsonl for each method, writes OUT/results.md (a table a
method: dev accuracy, accuracy per language, the averages, the matrix with
and without its diagonal, English under substitution and its worst case,
agreement and alignment with English, clean and attacked, alignment under
each pair's draw of lowest alignment, over the pairs of all languages
together, and what the attack and that draw take of them where the
attacked figures rest on the same pairs as the clean ones, where the reports
have them), OUT/accuracy.svg
(accuracy per language, a bar a method) and OUT/matrix-difference.svg (each
robust method's language-pair matrix minus vanilla's, as heat maps).
Where the reports have pairs.tsv (xltc eval from 2026-12-06 on), results.md
also compares each method with the first one pair by pair on the same
pairs: the difference in points with the exact McNemar p-value (two-sided)
for accuracy, English worst of k and agreement clean and under attack (and
each p adjusted by Holm's method over all the table's tests), and the
difference in alignment lost to the attack, and to the draw of lowest
alignment, with its 95% interval (columns no pair has are left out), and
how the alignment each attack takes is spread over the pairs (median, 90th
percentile, largest, how many lose over 0.1, and the mean without the ten
largest), since a mean can hide a few pairs that lose much. Two runs'
accuracies on the same 100 pairs a file are each good to about +-4 points,
but most pairs get the same answer from both, so the pairs on which they
differ say far more.
Standard library only.

    python3 benches/compare_methods.py OUT [METHOD | NAME=RUN ...]

A METHOD is the run folder OUT/METHOD; NAME=RUN takes the run folder RUN
from anywhere (another seed's or another sweep's) and shows it as NAME.

With --seeds, puts runs of the same methods with different seeds together:
OUT/seeds.md (each metric's mean, sample standard deviation and range over
the runs, a method kept where any seed has it) and OUT/seeds.svg
(agreement with English under attack against alignment under attack, a dot
a run). Where the runs have pairs.tsv, seeds.md also gives each method
minus the base (vanilla, unless --methods puts another first) of the
same seed, pair by pair, over the seeds (the mean and
spread of the per-seed differences, and how many seeds' intervals exclude
zero) and, for the methods with two seeds or more, every seed's pairs
taken together, with OUT/pooled.svg (those differences and their
intervals, a band a method). A run whose best dev-en accuracy stays
under --learned-above (default 0.6; the experiment's 200 dev pairs are 50.5% one label, and 120
right of 200 by chance is p < 0.01) did not learn the task: it is counted
and named, but left out of the means, since a classifier that answers one
label agrees with itself under any attack and in every language.

    python3 benches/compare_methods.py --seeds OUT [--learned-above A] [--methods M,M...] SEED [SEED ...]

A SEED is a FOLDER of runs (FOLDER/METHOD), or NAME=RUN,NAME=RUN... naming
one seed's runs wherever they are, or both: FOLDER,NAME=RUN,... (a name
twice in a seed is refused). Every method the seeds hold is shown
(the experiment's eight first, then the others by name), the first one the
base of the paired comparisons; --methods keeps only the methods it names,
in its order, the first the base.
"""
import json
import math
import os
import statistics
import sys

# One colour a method for the experiment's eight (and two to spare); past
# that, plots repeat them and tell methods apart by marker or position.
COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
           "#ccb974", "#64b5cd"]


USAGE = """usage: python3 benches/compare_methods.py OUT [METHOD | NAME=RUN ...]
       python3 benches/compare_methods.py --seeds OUT [--learned-above A] [--methods M,M...] SEED [SEED ...]
           (a SEED: FOLDERs of runs and NAME=RUNs picked from anywhere, comma-separated;
            --methods: only those, in that order, the first the base)"""


def fail(message, code=1):
    """Stops with a message on stderr (and the usage for a bad command line)."""
    print(f"compare_methods: {message}" + (f"\n{USAGE}" if code == 2 else ""), file=sys.stderr)
    sys.exit(code)


def has_report(run):
    return os.path.exists(os.path.join(run, "eval", "report.json"))


def named_run(item):
    """NAME=RUN as (name, run folder), refused when either side is empty."""
    name, _, run = item.partition("=")
    if not name or not run:
        fail(f"{item}: give a run as NAME=RUN", 2)
    return name, run


def load(run):
    """A run folder's (OUT/METHOD: eval/report.json and log.jsonl) report and dev accuracies."""
    path = os.path.join(run, "eval", "report.json")
    try:
        with open(path) as f:
            report = json.load(f)["evaluation"]
        path = os.path.join(run, "log.jsonl")
        with open(path) as f:
            dev = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{path}: not a run's report or training log ({type(e).__name__}: {e})")
    dev = [r["dev_accuracy"] for r in dev if "dev_accuracy" in r]
    return report, dev


def percent(value):
    return "-" if value is None else f"{100 * value:.1f}"


def cosine(value):
    return "-" if value is None else f"{value:.4f}"


def pooled(consistency, key, count):
    """A consistency metric over all the examples of every language, each
    language weighted by its number of examples (`count`), not a mean of the
    languages' figures: under --max-pairs the English test shares few of its
    attacked pairs with some languages (4 of 100 with zh in the experiment),
    and a language with 4 pairs must not weigh as much as one with 74."""
    rows = [(c[key], c[count]) for c in consistency if c.get(key) is not None and c.get(count)]
    total = sum(n for _, n in rows)
    return sum(v * n for v, n in rows) / total if total else None


def lost(consistency, clean, attacked):
    """How much of a consistency metric the attack takes away (clean minus
    attacked), pooled; only where every language's attacked figure rests on
    the same pairs as its clean one (reports of xltc before it substituted
    every shared English original compared different pairs: None)."""
    if not consistency or any(c.get("perturbed_pairs") != c["shared_pairs"] for c in consistency):
        return None
    before, after = pooled(consistency, clean, "shared_pairs"), pooled(consistency, attacked, "shared_pairs")
    return None if before is None or after is None else before - after


def metrics(report, dev):
    """The numbers a run's row shows, from its report and dev accuracies."""
    consistency = report["consistency"]
    return {"agreement_lost": lost(consistency, "agreement", "attacked_agreement"),
            "alignment_lost": lost(consistency, "alignment", "attacked_alignment"),
            "alignment_lost_worst": lost(consistency, "alignment", "worst_alignment"),
            "dev": max(dev) if dev else None,
            "mean": report["averages"]["languages"],
            "mean_without_en": report["averages"]["languages_without_english"],
            "matrix": report["averages"]["matrix"],
            "matrix_off_diagonal": report["averages"]["matrix_off_diagonal"],
            "substituted": report["robustness"]["perturbed_accuracy"],
            "worst_of_k": report["robustness"]["worst_of_k_accuracy"],
            "agreement": pooled(consistency, "agreement", "shared_pairs"),
            "attacked_agreement": pooled(consistency, "attacked_agreement", "perturbed_pairs"),
            "alignment": pooled(consistency, "alignment", "shared_pairs"),
            "attacked_alignment": pooled(consistency, "attacked_alignment", "perturbed_pairs"),
            "worst_alignment": pooled(consistency, "worst_alignment", "perturbed_pairs"),
            # Of the translations' sentences, the share whose English original
            # finds them nearest among the file's (reports from before xltc
            # eval measured it have none).
            "retrieval": pooled(consistency, "retrieval", "shared_pairs"),
            "worst_retrieval": pooled(consistency, "worst_retrieval", "perturbed_pairs")}


def table(out, methods, reports):
    languages = [r["language"] for r in reports[methods[0]][0]["languages"]]
    header = ["method", "best dev-en"] + languages + [
        "mean", "mean without en", "matrix", "matrix off diagonal",
        "en substituted", "en worst of k", "agreement", "agreement attacked",
        "alignment", "alignment attacked", "alignment, worst draw", "retrieval", "retrieval, worst draw",
        "agreement lost to attack (points)",
        "alignment lost to attack", "alignment lost to its worst draw"]
    rows = []
    for method in methods:
        report, dev = reports[method]
        by_language = {r["language"]: r["accuracy"] for r in report["languages"]}
        m = metrics(report, dev)
        rows.append([method, percent(m["dev"])]
                    + [percent(by_language[l]) for l in languages]
                    + [percent(m[k]) for k in ["mean", "mean_without_en", "matrix", "matrix_off_diagonal",
                                               "substituted", "worst_of_k", "agreement", "attacked_agreement"]]
                    + [cosine(m["alignment"]), cosine(m["attacked_alignment"]), cosine(m["worst_alignment"]),
                       percent(m["retrieval"]), percent(m["worst_retrieval"]),
                       percent(m["agreement_lost"]), cosine(m["alignment_lost"]),
                       cosine(m["alignment_lost_worst"])])
    return markdown_table(header, rows), languages


def markdown_table(header, rows):
    """A markdown table, leaving out the columns no row has (alignment, for
    classifiers; figures older reports did not measure)."""
    kept = [i for i in range(len(header)) if any(row[i] != "-" for row in rows)]
    lines = ["| " + " | ".join(header[i] for i in kept) + " |", "|" + "---|" * len(kept)]
    lines += ["| " + " | ".join(row[i] for i in kept) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pair_rows(run):
    """pairs.tsv of a run folder's evaluation, keyed by (file, id); None without one."""
    path = os.path.join(run, "eval", "pairs.tsv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    return {(r["file"], r["id"]): r for r in rows}


def mcnemar(b, c):
    """Exact two-sided McNemar p-value: b pairs only the first got right, c
    only the second; under no difference each of the b + c is a fair coin."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(first, second, success):
    """(difference in points, p-value, pairs, 95% half-width in points) of
    `success` on the pairs both runs have where it applies: second minus
    first. Pairs with the same id are one English original and its
    translations, so they are one cluster (clustered())."""
    found = outcomes(first, second, success)
    if not found:
        return None
    centre, half, n = clustered(found)
    return 100 * centre, clustered_mcnemar(found), n, 100 * half


def by_cluster(values):
    """Sums and sizes of (cluster, value) pairs, a cluster a time."""
    sums, sizes = {}, {}
    for cluster, value in values:
        sums[cluster] = sums.get(cluster, 0) + value
        sizes[cluster] = sizes.get(cluster, 0) + 1
    return sums, sizes


def clustered(values):
    """Mean and 95% half-width (normal) of (cluster, value) pairs, and their
    count. A translation pair's four languages share one English original
    and its attacked draws, so their values move together: the variance
    is taken over clusters (the cluster-robust one, C/(C-1) times the sum
    over clusters of (cluster sum - its size x mean)^2 over N^2), which is
    the sample variance over N when every cluster holds one value."""
    sums, sizes = by_cluster(values)
    n, count = len(values), len(sums)
    centre = sum(sums.values()) / n
    if count < 2:
        return centre, math.inf, n
    spread = sum((sums[c] - sizes[c] * centre) ** 2 for c in sums) * count / (count - 1)
    return centre, 1.96 * math.sqrt(spread) / n, n


def clustered_mcnemar(outcomes):
    """Two-sided p of McNemar's test on (cluster, second minus first
    success) pairs: exact (mcnemar) where every cluster holds one pair, else
    Durkalski et al.'s (2003) form for clustered pairs, chi-square with 1
    degree of freedom on (sum of the clusters' b - c)^2 over the sum of
    their squares."""
    sums, sizes = by_cluster(outcomes)
    if all(size == 1 for size in sizes.values()):
        return mcnemar(sum(1 for _, d in outcomes if d > 0), sum(1 for _, d in outcomes if d < 0))
    squares = sum(v * v for v in sums.values())
    if squares == 0:
        return 1.0
    return math.erfc(math.sqrt(sum(sums.values()) ** 2 / squares / 2))


def holm(ps):
    """Holm's step-down adjustment of p-values taken together: the i-th
    smallest of m is multiplied by m - i (from 0), kept at least as large as
    the one before it and at most 1. Rejecting where the adjusted value is
    under 0.05 keeps the chance of any false finding in the family under 5%."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def alignment_lost(row, column):
    """A translation pair's alignment clean minus under an attacked draw
    (`column`: alignment_attacked, or alignment_worst, the draw of lowest
    alignment); None where the row has no such draw."""
    if row.get(column, "") == "":
        return None
    return float(row["alignment"]) - float(row[column])


def translation(row):
    return row["english"] != ""


# The two attacked draws of an English original pairs.tsv records, by the
# name the spread and sign tables give them: the class attack's and the
# draw of lowest alignment.
DRAWS = [("class attack", "alignment_attacked"), ("its worst draw", "alignment_worst")]


def lost_differences(first, second, column):
    """Per translation pair both runs have under the draw `column`: its id
    (its English original's) and the alignment the second run loses minus
    what the first loses."""
    both = [(k[1], alignment_lost(first[k], column), alignment_lost(second[k], column))
            for k in first if k in second and translation(first[k])]
    return [(i, y - x) for i, x, y in both if x is not None and y is not None]


# What paired_table compares pair by pair: a name and whether a pairs.tsv
# row counts as a success (None where the check does not apply).
CHECKS = [
    ("accuracy, every language's own test", lambda r: r["predicted"] == r["gold"]
     if r["file"] == "test-en.tsv" or translation(r) else None),
    ("en worst of k", lambda r: r["worst"] == r["gold"] if r["worst"] != "" else None),
    ("agreement", lambda r: r["predicted"] == r["english"] if translation(r) else None),
    ("agreement attacked", lambda r: r["predicted"] == r["english_attacked"]
     if translation(r) and r["english_attacked"] != "" else None),
]


def outcomes(first, second, success):
    """(English original's id, second's success minus first's) of every pair
    both runs have where `success` applies."""
    both = [(k[1], success(first[k]), success(second[k])) for k in first if k in second]
    return [(i, int(y) - int(x)) for i, x, y in both if x is not None and y is not None]


def paired_table(methods, rows):
    """Each method against the first on the same pairs, where both have
    pairs.tsv (`rows`: each method's pair_rows): (markdown, {method:
    {figure: (difference, 95% half-width)}}) for the table and its plot;
    None where fewer than two have."""
    base = methods[0]
    if rows[base] is None or not any(rows[m] for m in methods[1:]):
        return None
    losses = [("alignment lost to attack", "alignment_attacked"),
              ("alignment lost to its worst draw", "alignment_worst")]
    header = ["method"] + [f"{name} (points (95% interval), p, Holm, pairs)" for name, _ in CHECKS] + [
        f"{name} (difference (95% interval), pairs)" for name, _ in losses]
    results, intervals, figures = {}, {}, {}
    for method in methods[1:]:
        if rows[method] is None:
            continue
        a, b = rows[base], rows[method]
        results[method] = [paired(a, b, success) for _, success in CHECKS]
        figures[method] = {name: (r[0], r[3]) for (name, _), r in zip(CHECKS, results[method]) if r is not None}
        intervals[method] = []
        for name, column in losses:
            differences = lost_differences(a, b, column)
            intervals[method].append(clustered(differences) if differences else None)
            if differences:
                figures[method][name] = intervals[method][-1][:2]
    # Every McNemar test in the table is one family: many comparisons give
    # some small p by chance alone.
    tested = [(m, i) for m in results for i, r in enumerate(results[m]) if r is not None]
    adjusted = dict(zip(tested, holm([results[m][i][1] for m, i in tested])))
    table = [[method] + ["-" if r is None else
                         f"{r[0]:+.1f} ({r[0] - r[3]:+.1f} to {r[0] + r[3]:+.1f}), p {r[1]:.2g}, "
                         f"Holm {adjusted[(method, i)]:.2g}, {r[2]}"
                         for i, r in enumerate(cells)]
             + ["-" if v is None else f"{v[0]:+.4f} ({v[0] - v[1]:+.4f} to {v[0] + v[1]:+.4f}), {v[2]}"
                for v in intervals[method]]
             for method, cells in results.items()]
    return (f"Paired against {base}, on the same pairs (second minus first, with its 95% interval; an "
            f"English original's pairs in every language are one cluster, for the interval and the test; "
            f"p: McNemar, two-sided, exact where each original has one pair, else Durkalski's clustered "
            f"form; Holm: p adjusted by Holm's method over the table's "
            f"{len(tested)} tests):\n\n" + markdown_table(header, table)), figures


def spread_table(methods, rows):
    """How the alignment an attack takes is spread over the translation
    pairs, a row a method and attack, from pairs.tsv: the mean hides
    whether every pair loses a little or a few lose much. The 90th
    percentile is the nearest rank. `rows`: each method's pair_rows. None
    where no method has pairs.tsv with an attack."""
    table = []
    for method in methods:
        for name, column in DRAWS:
            losses = sorted(v for v in (alignment_lost(r, column) for r in (rows[method] or {}).values()
                                        if translation(r)) if v is not None)
            if not losses:
                continue
            n = len(losses)
            middle = statistics.median(losses)
            rest = f"{sum(losses[:-10]) / (n - 10):.4f}" if n > 10 else "-"
            table.append([method, name, str(n), f"{sum(losses) / n:.4f}", f"{middle:.4f}",
                          f"{losses[math.ceil(0.9 * n) - 1]:.4f}", f"{losses[-1]:.4f}",
                          str(sum(1 for v in losses if v > 0.1)), rest])
    if not table:
        return None
    header = ["method", "alignment lost to", "pairs", "mean", "median", "90th percentile", "largest",
              "pairs losing over 0.1", "mean without the ten largest"]
    return ("How the alignment lost is spread over the translation pairs (clean minus attacked, a "
            "pair's two cosines averaged; below zero where the attack brought the pair closer):\n\n"
            + markdown_table(header, table))


def original_signs(first, second, column):
    """The second run's alignment lost to the draw `column` minus the
    first's, averaged over each English original's translation pairs
    (sorted), and for how many originals it is below and above zero; None
    where no pair has both."""
    sums, sizes = by_cluster(lost_differences(first, second, column))
    if not sums:
        return None
    ds = sorted(sums[c] / sizes[c] for c in sums)
    return ds, sum(1 for d in ds if d < 0), sum(1 for d in ds if d > 0)


def sign_table(methods, rows):
    """Each method against the first, in the alignment each draw takes,
    an English original at a time (its translation pairs' differences
    averaged, since they share the attacked draw): for how many originals
    the method loses less and for how many more, the median difference,
    and the exact two-sided sign test on the originals that differ (Holm
    over the table's tests). The mean difference of paired_table can be
    carried by a few pairs that lose much; this counts originals, so it
    says whether the typical one holds better. None where fewer than two
    runs have pairs.tsv with an attack."""
    base = methods[0]
    found = [(method, name, signs) for method in methods[1:] for name, column in DRAWS
             if rows[base] is not None and rows[method] is not None
             for signs in [original_signs(rows[base], rows[method], column)] if signs]
    if not found:
        return None
    counts = [signs[1:] for _, _, signs in found]
    ps = [mcnemar(less, more) for less, more in counts]
    table = []
    for (method, name, (ds, _, _)), (less, more), p, adjusted in zip(found, counts, ps, holm(ps)):
        n = len(ds)
        table.append([method, name, str(n), str(less), str(more), str(n - less - more),
                      f"{statistics.median(ds):+.4f}", f"{p:.2g}", f"{adjusted:.2g}"])
    header = ["method", "alignment lost to", "English originals", f"loses less than {base}", "loses more",
              "the same", "median difference", "p", "Holm"]
    return (f"Original by original, which loses less alignment than {base} (an English original's "
            f"translation pairs averaged, as they share its attacked draw; p: exact two-sided sign test "
            f"on the originals that differ; Holm: over the table's {len(ps)} tests). A few pairs that "
            f"lose much can carry a mean; these count originals:\n\n" + markdown_table(header, table))


def forest(base, figures, taken=""):
    """Each method's paired differences from `base` with their 95%
    intervals: points on the left, alignment lost on the right, a line a
    figure, a band a method. `taken`, if given, says under the title how
    the pairs were taken."""
    methods = list(figures)
    panels = [([name for name in group if any(name in figures[m] for m in methods)], unit)
              for group, unit in [(["accuracy, every language's own test", "en worst of k", "agreement",
                                    "agreement attacked"], "+.1f"),
                                  (["alignment lost to attack", "alignment lost to its worst draw"], "+.4f")]]
    panels = [(names, unit) for names, unit in panels if names]
    most = max(len(names) for names, _ in panels)
    lines = [f"paired difference from {base} on the same pairs, with its 95% interval"] + ([taken] if taken else [])
    points, cosines = ("points (right of 0: more often right, or in agreement with English)",
                       "alignment lost (left of 0: loses less)")
    lines.append(f"left: {points}; right: {cosines}" if len(panels) == 2
                 else points if panels[0][1] == "+.1f" else cosines)
    band, width, top, left = 16 * most + 10, 360, 26 + 14 * len(lines), 90
    height = top + band * len(methods) + 20 + 14 * most
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + (width + 30) * len(panels)}" height="{height}" '
             f'font-family="sans-serif" font-size="11">']
    parts += [f'<text x="10" y="{14 * (i + 1)}">{line}</text>' for i, line in enumerate(lines)]
    for i, method in enumerate(methods):
        parts.append(f'<text x="{left - 6}" y="{top + i * band + band / 2 + 4:.1f}" text-anchor="end">{method}</text>')
    for k, (names, unit) in enumerate(panels):
        x0 = left + k * (width + 30)
        values = [v for m in methods for n in names if n in figures[m]
                  for v in (figures[m][n][0] - figures[m][n][1], figures[m][n][0] + figures[m][n][1])]
        reach = max(abs(v) for v in values) * 1.1 or 1.0
        scale = lambda v: x0 + width / 2 + v / reach * width / 2
        parts.append(f'<line x1="{scale(0):.1f}" x2="{scale(0):.1f}" y1="{top}" y2="{top + band * len(methods)}" stroke="#888"/>')
        for tick in (-reach / 1.1, 0.0, reach / 1.1):
            parts.append(f'<text x="{scale(tick):.1f}" y="{top - 4}" text-anchor="middle">{tick:{unit}}</text>')
        for i, method in enumerate(methods):
            if i:
                parts.append(f'<line x1="{x0}" x2="{x0 + width}" y1="{top + i * band}" y2="{top + i * band}" stroke="#eee"/>')
            for j, name in enumerate(names):
                if name not in figures[method]:
                    continue
                centre, half = figures[method][name]
                y = top + i * band + 10 + j * 16
                colour = COLOURS[j % len(COLOURS)]
                parts.append(f'<line x1="{scale(centre - half):.1f}" x2="{scale(centre + half):.1f}" y1="{y}" y2="{y}" '
                             f'stroke="{colour}" stroke-width="2"/>')
                parts.append(f'<circle cx="{scale(centre):.1f}" cy="{y}" r="3.5" fill="{colour}"/>')
        for j, name in enumerate(names):
            y = top + band * len(methods) + 16 + j * 14
            parts.append(f'<rect x="{x0}" y="{y - 9}" width="10" height="10" fill="{COLOURS[j % len(COLOURS)]}"/>')
            parts.append(f'<text x="{x0 + 14}" y="{y}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def bars(methods, reports, languages):
    width, height, left, bottom = 860, 320, 50, 40
    group = (width - left - 10) / len(languages)
    bar = group * 0.8 / len(methods)
    # The legend: four methods a row, so that every name fits.
    legend_rows = (len(methods) + 3) // 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14 + 18 * legend_rows}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="14">zero-shot accuracy per language (%), by training method</text>']
    scale = lambda a: height - bottom - a * (height - bottom - 30)
    for tick in range(0, 101, 20):
        y = scale(tick / 100)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    for i, language in enumerate(languages):
        for j, method in enumerate(methods):
            accuracy = {r["language"]: r["accuracy"] for r in reports[method][0]["languages"]}[language]
            x = left + i * group + group * 0.1 + j * bar
            parts.append(f'<rect x="{x:.1f}" y="{scale(accuracy):.1f}" width="{bar:.1f}" '
                         f'height="{scale(0) - scale(accuracy):.1f}" fill="{COLOURS[j % len(COLOURS)]}"/>')
        parts.append(f'<text x="{left + (i + 0.5) * group:.1f}" y="{height - bottom + 14}" text-anchor="middle">{language}</text>')
    for j, method in enumerate(methods):
        x, y = left + (j % 4) * 200, height + 8 + 18 * (j // 4)
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{COLOURS[j % len(COLOURS)]}"/>')
        parts.append(f'<text x="{x + 14}" y="{y + 9}">{method}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def heat_maps(methods, reports):
    base = reports[methods[0]][0]["matrix"]
    languages = base["languages"]
    cell, gap, top = 34, 40, 40
    size = cell * len(languages)
    others = methods[1:]
    width = max(760, 60 + len(others) * (size + gap))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{size + top + 50}" font-family="sans-serif" font-size="10">',
             f'<text x="10" y="14">language-pair accuracy, method minus {methods[0]} (points; row: sentence 1, column: sentence 2; blue better, red worse)</text>']
    for k, method in enumerate(others):
        matrix = reports[method][0]["matrix"]
        x0 = 40 + k * (size + gap)
        parts.append(f'<text x="{x0}" y="{top - 6}">{method}</text>')
        for i, row in enumerate(matrix["accuracy"]):
            for j, value in enumerate(row):
                difference = (value - base["accuracy"][i][j]) * 100
                strength = min(abs(difference) / 10, 1)
                shade = int(255 * (1 - strength))
                colour = f"rgb({shade},{shade},255)" if difference >= 0 else f"rgb(255,{shade},{shade})"
                x, y = x0 + j * cell, top + i * cell
                parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour}" stroke="#fff"/>')
                parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 3}" text-anchor="middle">{difference:+.0f}</text>')
        for i, language in enumerate(languages):
            parts.append(f'<text x="{x0 - 4}" y="{top + i * cell + cell / 2 + 3}" text-anchor="end">{language}</text>')
            parts.append(f'<text x="{x0 + i * cell + cell / 2}" y="{top + size + 12}" text-anchor="middle">{language}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


SEED_METRICS = [("best dev-en", "dev", percent), ("mean", "mean", percent),
                ("mean without en", "mean_without_en", percent),
                ("matrix off diagonal", "matrix_off_diagonal", percent),
                ("en worst of k", "worst_of_k", percent), ("agreement", "agreement", percent),
                ("agreement attacked", "attacked_agreement", percent),
                ("alignment", "alignment", cosine), ("alignment attacked", "attacked_alignment", cosine),
                ("alignment, worst draw", "worst_alignment", cosine),
                ("retrieval", "retrieval", percent), ("retrieval, worst draw", "worst_retrieval", percent),
                ("agreement lost to attack", "agreement_lost", percent),
                ("alignment lost to attack", "alignment_lost", cosine),
                ("alignment lost to its worst draw", "alignment_lost_worst", cosine)]


def mean_deviation(values):
    """Mean and sample standard deviation (0 for one value)."""
    n = len(values)
    centre = sum(values) / n
    deviation = (sum((v - centre) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return centre, deviation


def spread(values, show):
    """Mean ± deviation (range) of the runs that have the metric (older
    reports lack some), saying how many of the runs those are where not
    all; "-" where none has it."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    if len(present) < 2:
        text = show(present[0])
    else:
        centre, deviation = mean_deviation(present)
        text = f"{show(centre)} ± {show(deviation)} ({show(min(present))}–{show(max(present))})"
    return text if len(present) == len(values) else f"{text}; {len(present)} of {len(values)} runs"


def seeds_table(runs, learned_above):
    # A metric no run has (what the attack takes, from older reports) is left out.
    shown = [m for m in SEED_METRICS if any(v[m[1]] is not None for vs in runs.values() for v in vs)]
    header = ["method", "runs"] + [name for name, _, _ in shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    failed = [(method, v) for method, values in runs.items() for v in values if not v["learned"]]
    for method, values in runs.items():
        learned = [v for v in values if v["learned"]]
        count = str(len(values)) if len(learned) == len(values) else (
            f"{len(values)} ({len(values) - len(learned)} did not learn)")
        cells = [method, count]
        for _, key, show in shown:
            cells.append(spread([v[key] for v in learned], show) if learned else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if failed:
        lines.append("")
        lines.append(f"Left out of the means: best dev-en under {percent(learned_above)}, the task not learned.")
        for method, v in failed:
            lines.append(f"- {method}, {v['run']}: best dev-en {percent(v['dev'])}, mean {percent(v['mean'])}, "
                         f"agreement attacked {percent(v['attacked_agreement'])}, "
                         f"alignment attacked {cosine(v['attacked_alignment'])}")
    return "\n".join(lines) + "\n"


def seeds_scatter(runs):
    width, height, left, bottom = 640, 380, 60, 50
    # Runs whose report has no attacked figures (older sweeps) have no dot,
    # and a method without dots no place in the legend.
    attacked = lambda v: v["attacked_alignment"] is not None and v["attacked_agreement"] is not None
    runs = {m: [v for v in vs if attacked(v)] for m, vs in runs.items()}
    runs = {m: vs for m, vs in runs.items() if vs}
    points = [(v["attacked_alignment"], v["attacked_agreement"]) for vs in runs.values() for v in vs]
    # Padded, but neither a cosine nor a share of pairs goes past 1.
    x_low, x_high = min(p[0] for p in points) - 0.01, min(max(p[0] for p in points) + 0.01, 1.0)
    y_low, y_high = min(p[1] for p in points) - 0.02, min(max(p[1] for p in points) + 0.02, 1.0)
    sx = lambda x: left + (x - x_low) / (x_high - x_low) * (width - left - 150)
    sy = lambda y: height - bottom - (y - y_low) / (y_high - y_low) * (height - bottom - 30)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             '<text x="10" y="14">a dot a run (seed): agreement with English vs alignment with English, English attacked</text>',
             f'<line x1="{left}" x2="{left}" y1="30" y2="{height - bottom}" stroke="#000"/>',
             f'<line x1="{left}" x2="{width - 150}" y1="{height - bottom}" y2="{height - bottom}" stroke="#000"/>',
             f'<text x="{(left + width - 150) / 2}" y="{height - 12}" text-anchor="middle">alignment with English, attacked (cosine)</text>',
             f'<text x="14" y="{(height - bottom) / 2}" transform="rotate(-90 14 {(height - bottom) / 2})" text-anchor="middle">agreement attacked (%)</text>']
    for i in range(5):
        x = x_low + (x_high - x_low) * i / 4
        y = y_low + (y_high - y_low) * i / 4
        parts.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 14}" text-anchor="middle">{x:.3f}</text>')
        parts.append(f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{100 * y:.0f}</text>')
    for j, (method, values) in enumerate(runs.items()):
        # Circles for the first len(COLOURS) methods, then squares.
        colour, round_ = COLOURS[j % len(COLOURS)], j < len(COLOURS)
        def marker(x, y, learned=True):
            paint = f'fill="{colour}"' if learned else f'fill="none" stroke="{colour}" stroke-width="2"'
            return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" {paint}/>' if round_
                    else f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" {paint}/>')
        for v in values:
            parts.append(marker(sx(v["attacked_alignment"]), sy(v["attacked_agreement"]), v["learned"]))
        parts.append(marker(width - 134, 40 + 16 * j))
        parts.append(f'<text x="{width - 124}" y="{44 + 16 * j}">{method}</text>')
    if not all(v["learned"] for vs in runs.values() for v in vs):
        parts.append(f'<text x="{width - 140}" y="{48 + 16 * len(runs)}">hollow: did not learn</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# The seeds table's column of the typical English original: the share of
# originals whose translations lose less alignment to its worst draw than
# under the first method (original_signs).
TYPICAL = "originals losing less to its worst draw"


def seeds_paired_table(runs):
    """Each method minus the first method of the same seed, pair by pair
    (paired_table's figures, one seed at a time), then over the seeds: the
    mean, sample standard deviation and range of the per-seed differences,
    and in how many seeds the 95% interval lies wholly below or above zero.
    A seed counts only where both runs learned and have pairs.tsv. The seeds
    of a method and of the first share their seed's head and data order, so
    the difference varies less than either run; then, for the methods with
    two seeds or more, every seed's pairs taken together (pooled_table).
    `runs`: seeds()'s. Returns the text and the pooled differences (None
    where no method has two seeds); None where no seed pairs anything."""
    base = next(iter(runs))
    # The first method's learned runs by seed, each pairs.tsv read once.
    firsts = {v["seed"]: pair_rows(v["run"]) for v in runs[base] if v["learned"]}
    figures, pooled_outcomes, seeds_pooled = {}, {}, {}
    for method in list(runs)[1:]:
        for run in runs[method]:
            if run["seed"] not in firsts or not run["learned"]:
                continue
            rows = {base: firsts[run["seed"]], method: pair_rows(run["run"])}
            if rows[base] and rows[method]:
                seeds_pooled[method] = seeds_pooled.get(method, 0) + 1
                for name, success in CHECKS:
                    pooled_outcomes.setdefault(method, {}).setdefault(name, []).extend(
                        outcomes(rows[base], rows[method], success))
            compared = paired_table([base, method], rows)
            for name, value in (compared[1][method].items() if compared else []):
                figures.setdefault(method, {}).setdefault(name, []).append(value)
            signs = rows[base] and rows[method] and original_signs(rows[base], rows[method], "alignment_worst")
            if signs:
                figures.setdefault(method, {}).setdefault(TYPICAL, []).append(signs)
    if not figures:
        return None
    points, cosines = (lambda v: f"{v:+.1f}"), (lambda v: f"{v:+.4f}")
    shown = [(name, unit, show) for name, unit, show in
             [("agreement attacked", "points", points), ("alignment lost to attack", "cosine", cosines),
              ("alignment lost to its worst draw", "cosine", cosines),
              ("accuracy, every language's own test", "points", points)]
             if any(name in f for f in figures.values())]
    if any(TYPICAL in f for f in figures.values()):
        shown.append((TYPICAL, "share", None))
    table = []
    for method, by_name in figures.items():
        cells = [method]
        for name, _, show in shown:
            values = by_name.get(name, [])
            if not values:
                cells.append("-")
                continue
            if name == TYPICAL:
                shares = [100 * less / len(ds) for ds, less, _ in values]
                more_half = sum(1 for _, less, more in values if less > more and mcnemar(less, more) < 0.05)
                fewer = sum(1 for _, less, more in values if less < more and mcnemar(less, more) < 0.05)
                if len(values) == 1:
                    side = "more than half" if more_half else "fewer than half" if fewer else "neither"
                    cells.append(f"{shares[0]:.0f}%; 1 seed, {side}")
                else:
                    cells.append(f"{sum(shares) / len(shares):.0f}% ({min(shares):.0f} to {max(shares):.0f}); "
                                 f"{len(values)} seeds, {more_half} more, {fewer} fewer")
                continue
            below = sum(1 for centre, half in values if centre + half < 0)
            above = sum(1 for centre, half in values if centre - half > 0)
            centres = [c for c, _ in values]
            if len(values) == 1:
                side = "below 0" if below else "above 0" if above else "interval across 0"
                cells.append(f"{show(centres[0])}; 1 seed, {side}")
                continue
            centre, deviation = mean_deviation(centres)
            cells.append(f"{show(centre)} ± {show(deviation).lstrip('+')} ({show(min(centres))} to "
                         f"{show(max(centres))}); {len(values)} seeds, {below} below 0, {above} above")
        table.append(cells)
    header = ["method"] + [f"{name} ({unit})" for name, unit, _ in shown]
    # Taken together where a method has two seeds or more.
    together = {m: v for m, v in pooled_outcomes.items() if seeds_pooled[m] > 1}
    pooled_text, pooled_figures = pooled_table(base, together) if together else ("", None)
    return (f"Each method minus {base} of the same seed, on the same pairs: the per-seed differences' mean ± "
            f"standard deviation (range), and the seeds whose 95% interval lies wholly below or above 0 "
            f"(seeds where both runs learned and have pairs.tsv; each interval is one seed's own, not "
            f"adjusted for the table's many comparisons, so one seed's interval off 0 may be chance). "
            f"The last column: the share of English originals whose translations lose less alignment "
            f"to its worst draw than {base}'s, mean (range) over seeds, and the seeds where the exact "
            f"sign test (p under 0.05, unadjusted) finds more or fewer than half:\n\n"
            + markdown_table(header, table)
            + ("\n\n" + pooled_text if pooled_text else "")), pooled_figures


def pooled_table(base, found):
    """The seeds' pairs taken together, each method against `base`: the
    difference in points with its 95% interval, Durkalski's clustered
    McNemar p and the pairs. An English original's pairs in every language
    and every seed are one cluster: the same test item, so its outcomes
    move together across seeds as across languages. Holm over the table.
    Returns the table and its differences for forest()."""
    cells = {m: {name: (clustered(v), clustered_mcnemar(v)) for name, v in by_name.items() if v}
             for m, by_name in found.items()}
    tested = [(m, name) for m in cells for name in cells[m]]
    adjusted = dict(zip(tested, holm([cells[m][name][1] for m, name in tested])))
    header = ["method"] + [f"{name} (points (95% interval), p, Holm, pairs)" for name, _ in CHECKS]
    table = []
    for method, by_name in cells.items():
        row = [method]
        for name, _ in CHECKS:
            if name not in by_name:
                row.append("-")
                continue
            (centre, half, n), p = by_name[name]
            row.append(f"{100 * centre:+.1f} ({100 * (centre - half):+.1f} to {100 * (centre + half):+.1f}), "
                       f"p {p:.2g}, Holm {adjusted[(method, name)]:.2g}, {n}")
        table.append(row)
    figures = {m: {name: (100 * centre, 100 * half) for name, ((centre, half, _), _) in by_name.items()}
               for m, by_name in cells.items()}
    return (f"The same comparisons with every seed's pairs taken together, against {base} of the same "
            f"seed (an English original's pairs in every language and seed are one cluster; p: "
            f"Durkalski's clustered McNemar; Holm over the table's {len(tested)} tests; "
            f"plotted in pooled.svg):\n\n"
            + markdown_table(header, table)), figures


def seed_runs(seed):
    """A seed's runs by name, from a comma-separated list of FOLDERs (each
    FOLDER/METHOD with eval/report.json) and NAME=RUNs; a name twice is
    refused."""
    runs = {}
    for item in seed.split(","):
        if "=" in item:
            found = [named_run(item)]
        else:
            folder = directory(item)
            found = [(m, os.path.join(folder, m)) for m in sorted(os.listdir(folder))
                     if has_report(os.path.join(folder, m))]
        for name, run in found:
            if name in runs:
                fail(f"{name} twice in the seed {seed}: {runs[name]} and {run}", 2)
            runs[name] = run
    return runs


def seeds(out, seed_args, learned_above, only=None):
    """--seeds: the runs of each SEED in `seed_args` by method, `only` those
    methods in that order (the first the base) where given."""
    by_seed = [(seed, seed_runs(seed)) for seed in seed_args]
    if not any(found for _, found in by_seed):
        fail(f"no METHOD/eval/report.json in {', '.join(seed_args)}")
    if only:
        missing = [m for m in only if not any(m in found for _, found in by_seed)]
        if missing:
            fail(f"no run of {', '.join(missing)} in {', '.join(seed_args)}")
        methods = only
    else:
        methods = ["vanilla", "rs-da", "rs-rp", "adv", "vanilla+par", "adv+par", "rs-rp+par", "rs-da+par"]
        # Then any other run the seeds hold (vanilla+con, ...), by name.
        methods += sorted({m for _, found in by_seed for m in found if m not in methods})
    runs = {}
    for method in methods:
        found = [(seed, by_name[method]) for seed, by_name in by_seed if method in by_name]
        if found:
            runs[method] = [dict(m, seed=seed, run=run, learned=m["dev"] >= learned_above)
                            for seed, run in found for m in [metrics(*load(run))]]
    text = seeds_table(runs, learned_above)
    compared, together = seeds_paired_table(runs) or ("", None)
    if compared:
        text += "\n" + compared
    write(os.path.join(out, "seeds.md"), text)
    write(os.path.join(out, "seeds.svg"), seeds_scatter(runs))
    plot = os.path.join(out, "pooled.svg")
    if together:
        write(plot, forest(next(iter(runs)), together, "of the same seed, every seed's pairs taken together"))
    elif os.path.exists(plot):
        # An older run's plot would no longer match seeds.md.
        os.remove(plot)
    print(text, end="")


def directory(path):
    if not os.path.isdir(path):
        fail(f"{path}: no such folder")
    return path


def main():
    args = sys.argv[1:]
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    if not args or (args[0].startswith("-") and args[0] != "--seeds"):
        fail("give OUT" if not args else f"unknown option {args[0]}", 2)
    if args[0] == "--seeds":
        folders, learned_above, only = args[2:], 0.6, None
        while folders[:1] in (["--learned-above"], ["--methods"]):
            option, value, folders = folders[0], folders[1] if len(folders) > 1 else "", folders[2:]
            if option == "--methods":
                only = [m for m in value.split(",") if m]
                if not only or len(set(only)) < len(only):
                    fail("--methods takes method names, each once, the base first: vanilla,rs-da,...", 2)
                continue
            try:
                learned_above = float(value)
            except ValueError:
                fail("--learned-above takes a fraction of dev pairs, e.g. 0.6", 2)
        if len(args) < 2 or not folders:
            fail("--seeds takes OUT and at least one SEED (FOLDERs of runs and NAME=RUNs, comma-separated)", 2)
        seeds(directory(args[1]), folders, learned_above, only)
        return
    out = directory(args[0])
    # A method is OUT/METHOD, or NAME=RUN: the run folder RUN (anywhere) shown as NAME.
    named = [named_run(a) if "=" in a else (a, os.path.join(out, a)) for a in args[1:]]
    named = named or [(m, os.path.join(out, m)) for m in ["vanilla", "rs-da", "rs-rp", "adv"]
                      if has_report(os.path.join(out, m))]
    if not named:
        fail(f"{out}: no METHOD/eval/report.json for vanilla, rs-da, rs-rp or adv; name the methods")
    methods = [name for name, _ in named]
    if len(set(methods)) < len(methods):
        fail(f"a method named twice in {', '.join(methods)}", 2)
    reports = {name: load(run) for name, run in named}
    text, languages = table(out, methods, reports)
    # Each run's pairs.tsv, read once for both pair-by-pair tables.
    rows = {name: pair_rows(run) for name, run in named}
    compared = paired_table(methods, rows)
    if compared:
        text += "\n" + compared[0]
        write(os.path.join(out, "paired.svg"), forest(methods[0], compared[1]))
    for section in (sign_table(methods, rows), spread_table(methods, rows)):
        if section:
            text += "\n" + section
    write(os.path.join(out, "results.md"), text)
    write(os.path.join(out, "accuracy.svg"), bars(methods, reports, languages))
    if len(methods) > 1:
        write(os.path.join(out, "matrix-difference.svg"), heat_maps(methods, reports))
    print(text, end="")


if __name__ == "__main__":
    main()
