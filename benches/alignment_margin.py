#!/usr/bin/env python3
"""How far a model keeps a sentence's translation from sentences that are
not its translation: the yardstick for the alignment `xltc eval` reports.

The alignment of a translation pair is the cosine of the two sentences'
mean-pooled embeddings. A model can raise it, and lose less of it to an
attack, by bringing every sentence near every other, translations or not;
then a small loss may still be a large one measured against the gap that
tells a translation from the rest. This script measures that gap on the
test pairs `xltc eval` uses for consistency:

    python3 benches/alignment_margin.py OUT NAME=MODEL... [--data DIR]
        [--langs de,fr,ja,zh] [--pairs 100] [--xltc target/release/xltc]

MODEL is a checkpoint (best/ of `xltc train`, with its classification
head, which is left out here: only the encoder embeds) or an encoder
folder. For each language, the first --pairs pairs of test-{L}.tsv whose
English original test-en.tsv holds (as `xltc eval --max-pairs` takes
them), and for each of the pair's two sentences (as eval's alignment
averages them): the cosine of the English original with its translation,
the mean cosine of the English original with the other originals'
translations, their gap, and retrieval: the share of originals whose own
translation is the nearest of all the language's distinct translations
(strictly; ties count as misses). The same again under the attack on
alignment: `xltc eval --perturb synonyms --draws 3` substitutes each
English original three times (its seed 7 and rule, replayed here bit for
bit: SplitMix64 seeded by the seed xor the id's FNV-1a hash, a uniform
draw from each space-separated word and its counter-fitted neighbours),
and for each translation the draw of lowest alignment is kept.
Embeddings come from `xltc run --cpu --truncate --json` (the CPU
reference, eval's own embedding: the same cosines to the last printed
digit). With --losses per model (NAME=EVAL_DIR, its eval/ folder's
pairs.tsv), the mean alignment each attack takes is also given as a share
of the gap, and the replayed worst draw is checked against eval's
(alignment_worst): the largest difference is printed, and over 1e-5 is
an error.

Writes OUT/margin.md (and prints it), and each model's retrieval item by
item (file, id, sentence 1 or 2, found clean, found under the worst draw)
to OUT/retrieval/NAME.tsv. With --against BASE, OUT/retrieval.md (also
printed) sets every model with such a file beside BASE's on the same
items: the difference in retrieval, clean and under the worst draw, with
a 95% interval and McNemar's p, both clustered by English original (its
four languages and two sentences share it and its draws; the statistics
of compare_methods.py). Standard library only.
"""
import argparse
import csv
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from compare_methods import clustered, clustered_mcnemar

# Base-model class of each model_type, for an encoder without its head.
ENCODERS = {"bert": "BertModel", "xlm-roberta": "XLMRobertaModel"}


SYNONYMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "datasets", "synonyms", "counterfitted_neighbors.json")
MASK = (1 << 64) - 1


class MarginError(Exception):
    pass


class SplitMix64:
    """xltc's host generator (runtime/src/random.rs), bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        """Lemire's unbiased draw from 0..n, as the Rust does it."""
        threshold = (-n & MASK) % n
        while True:
            product = self.next_u64() * n
            if product & MASK >= threshold:
                return product >> 64


def fnv1a(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def perturb(sentence, neighbours, rng):
    """One substitution by the paper's rule (runtime/src/synonyms.rs):
    split on single spaces, exact lookup, a uniform draw from the word and
    its neighbours; a word without neighbours takes no draw."""
    words = []
    for word in sentence.split(" "):
        options = neighbours.get(word) or []
        k = rng.below(len(options) + 1) if options else 0
        words.append(options[k - 1] if k else word)
    return " ".join(words)


def draws(pair_id, english, neighbours, count, seed):
    """The `count` substitutions of an English pair eval draws (its
    draw_perturbations): both sentences from one generator, in turn."""
    rng = SplitMix64(seed ^ fnv1a(pair_id))
    return [(perturb(english[0], neighbours, rng), perturb(english[1], neighbours, rng))
            for _ in range(count)]


def read_tsv(path):
    """The rows of a TSV with a header, as dictionaries."""
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except OSError as e:
        raise MarginError(f"{path}: {e.strerror}") from e


def read_pairs(path):
    """{id: (sentence1, sentence2)} of a test TSV, in file order."""
    rows = read_tsv(path)
    if rows and not {"id", "sentence1", "sentence2"} <= set(rows[0]):
        raise MarginError(f"{path}: needs columns id, sentence1, sentence2")
    return {r["id"]: (r["sentence1"], r["sentence2"]) for r in rows}


def strip_head(source, target):
    """Writes into `target` the encoder of checkpoint `source`: config.json
    with the base model's architecture, model.safetensors without the
    classifier's tensors, the tokenizer files linked. Returns `target`, or
    `source` itself when it has no classification head."""
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    architecture = (config.get("architectures") or [""])[0]
    if not architecture.endswith("ForSequenceClassification"):
        return source
    encoder = ENCODERS.get(config.get("model_type"))
    if encoder is None:
        raise MarginError(f"{source}/config.json: model_type {config.get('model_type')!r} has no encoder here")
    config["architectures"] = [encoder]
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for name in os.listdir(source):
        if name not in ("config.json", "model.safetensors"):
            os.symlink(os.path.abspath(os.path.join(source, name)), os.path.join(target, name))
    without_tensors(os.path.join(source, "model.safetensors"), os.path.join(target, "model.safetensors"),
                    lambda name: name.startswith("classifier."))
    return target


def without_tensors(source, target, drop):
    """Copies a safetensors file without the tensors whose name `drop`
    accepts (header: 8-byte little-endian length, JSON, then the data)."""
    with open(source, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        try:
            header = json.loads(f.read(length))
        except ValueError as e:
            raise MarginError(f"{source}: not a safetensors header ({e})") from e
        data = f.read()
    kept, chunks, offset = {}, [], 0
    tensors = {k: v for k, v in header.items() if k != "__metadata__" and not drop(k)}
    for name, info in sorted(tensors.items(), key=lambda item: item[1]["data_offsets"][0]):
        start, end = info["data_offsets"]
        chunks.append(data[start:end])
        kept[name] = dict(info, data_offsets=[offset, offset + end - start])
        offset += end - start
    if "__metadata__" in header:
        kept["__metadata__"] = header["__metadata__"]
    text = json.dumps(kept).encode()
    text += b" " * (-len(text) % 8)
    with open(target, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def embed(xltc, model, sentences, work):
    """{sentence: unit-length embedding} from `xltc run`."""
    path = os.path.join(work, "sentences.txt")
    with open(path, "w") as f:
        f.write("".join(s + "\n" for s in sentences))
    result = subprocess.run([xltc, "run", model, "--cpu", "--truncate", "--json", "--file", path],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise MarginError(f"{model}: xltc run failed: {result.stderr.strip()}")
    vectors = [json.loads(line)["embedding"] for line in result.stdout.splitlines() if line.strip()]
    if len(vectors) != len(sentences):
        raise MarginError(f"{model}: {len(vectors)} embeddings for {len(sentences)} sentences")
    return {s: unit(v) for s, v in zip(sentences, vectors)}


def unit(vector):
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def margins(english, translated, vectors):
    """Over matched lists of English sentences and their translations
    (same length, i-th with i-th): (mean cosine of translations, mean cosine
    with the other originals' translations, retrieval share, and whether
    each original retrieves its own). Retrieval compares each original's
    translation with every other distinct translation text, strictly."""
    n = len(english)
    own, other, found = 0.0, [], []
    for i in range(n):
        scores = [dot(vectors[english[i]], vectors[t]) for t in translated]
        own += scores[i]
        other += scores[:i] + scores[i + 1:]
        # A repeat of the translation's own text is no rival.
        found.append(all(scores[i] > score for t, score in zip(translated, scores) if t != translated[i]))
    return own / n, sum(other) / len(other) if other else float("nan"), sum(found) / n, found


def chosen_pairs(data, languages, count):
    """For each language, (id, English original, translation) of the first
    `count` pairs of test-{language}.tsv that test-en.tsv holds."""
    english = read_pairs(os.path.join(data, "test-en.tsv"))
    chosen = {}
    for language in languages:
        translated = read_pairs(os.path.join(data, f"test-{language}.tsv"))
        shared = [(i, english[i], translated[i]) for i in list(translated)[:count] if i in english]
        # `xltc run --file` skips lines that start with # or are empty.
        chosen[language] = [(i, e, t) for i, e, t in shared
                            if not any(s.startswith("#") or not s.strip() for s in e + t)]
    return chosen


def worst_draws(shared, substituted, vectors):
    """For each (id, English, translation) of `shared`, the draw of
    `substituted[id]` of lowest alignment with the translation (the mean of
    the two sentences' cosines, the first draw on a tie, as eval keeps it)
    and that alignment."""
    out = []
    for i, _, t in shared:
        scored = [((dot(vectors[a], vectors[t[0]]) + dot(vectors[b], vectors[t[1]])) / 2, (a, b))
                  for a, b in substituted[i]]
        lowest = min(value for value, _ in scored)
        out.append(next((draw, value) for value, draw in scored if value == lowest))
    return out


def mean_losses(records):
    """Mean alignment lost to the class attack and to the worst draw over
    the translation pairs of pairs.tsv's rows."""
    rows = [r for r in records if r["english"] != ""]
    out = []
    for column in ("alignment_attacked", "alignment_worst"):
        values = [float(r["alignment"]) - float(r[column]) for r in rows if r.get(column, "") != ""]
        out.append(sum(values) / len(values) if values else None)
    return out


def pooled(figures):
    """The mean of each position of equal-length tuples."""
    return [sum(f[k] for f in figures) / len(figures) for k in range(len(figures[0]))]


def measure(name, model, pairs, substituted, args, work, losses):
    """A row of the table for one model, and its retrieval item by item:
    (file, id, sentence, found clean, found under the worst draw)."""
    encoder = strip_head(model, os.path.join(work, "encoder"))
    sentences = sorted({s for shared in pairs.values() for _, e, t in shared for s in e + t}
                       | {s for ds in substituted.values() for d in ds for s in d})
    vectors = embed(args.xltc, encoder, sentences, work)
    if encoder != model:
        shutil.rmtree(encoder)
    clean, attacked, replayed, items = [], [], {}, []
    for language, shared in pairs.items():
        worst = worst_draws(shared, substituted, vectors)
        replayed.update({(f"test-{language}.tsv", i): value for (i, _, _), (_, value) in zip(shared, worst)})
        for slot in (0, 1):
            translations = [t[slot] for _, _, t in shared]
            clean.append(margins([e[slot] for _, e, _ in shared], translations, vectors))
            attacked.append(margins([draw[slot] for draw, _ in worst], translations, vectors))
            items += [(f"test-{language}.tsv", i, slot + 1, found, under)
                      for (i, _, _), found, under in zip(shared, clean[-1][3], attacked[-1][3])]
    own, other, _ = pooled([c[:3] for c in clean])
    under = pooled([a[:3] for a in attacked])
    # Retrieval as a count over the items, not a mean of the groups' shares
    # (equal in exact arithmetic; in floats a mean of shares can land under
    # a rounding boundary, 97.75 printed as 97.7, that retrieval.md's count
    # prints as 97.8).
    found = sum(item[3] for item in items) / len(items)
    under[2] = sum(item[4] for item in items) / len(items)
    cells = [name, f"{own:.4f}", f"{other:.4f}", f"{own - other:.4f}", f"{100 * found:.1f}",
             f"{under[0]:.4f}", f"{under[1]:.4f}", f"{under[0] - under[1]:.4f}", f"{100 * under[2]:.1f}"]
    if name not in losses:
        return cells + ["-", "-"], items
    path = os.path.join(losses[name], "pairs.tsv")
    records = read_tsv(path)
    recorded = {(r["file"], r["id"]): r["alignment_worst"] for r in records}
    gaps = [abs(float(recorded[k]) - v) for k, v in replayed.items() if recorded.get(k, "") != ""]
    if not gaps or max(gaps) > 1e-5:
        raise MarginError(f"{path}: the replayed worst draws do not give eval's alignment_worst "
                          f"(largest difference {max(gaps) if gaps else 'none compared'})")
    print(f"alignment_margin: {name}: the replayed worst draw gives eval's alignment_worst on "
          f"{len(gaps)} pairs (largest difference {max(gaps):.1e})", file=sys.stderr)
    return cells + [f"{v:.4f} ({100 * v / (own - other):.1f}% of the gap)" if v is not None else "-"
                    for v in mean_losses(records)], items


ITEM_COLUMNS = ["file", "id", "sentence", "found", "found_worst"]


def write_items(out, name, items):
    """OUT/retrieval/NAME.tsv: a model's retrieval item by item."""
    folder = os.path.join(out, "retrieval")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.tsv")
    with open(path + ".tmp", "w") as f:
        f.write("\t".join(ITEM_COLUMNS) + "\n")
        f.write("".join(f"{file}\t{i}\t{slot}\t{int(found)}\t{int(under)}\n"
                        for file, i, slot, found, under in items))
    os.replace(path + ".tmp", path)


def read_items(path):
    """{(file, id, sentence): (found, found_worst)} of a retrieval TSV."""
    rows = read_tsv(path)
    if not rows or list(rows[0]) != ITEM_COLUMNS:
        raise MarginError(f"{path}: needs the columns {', '.join(ITEM_COLUMNS)} and a row")
    items = {}
    for number, r in enumerate(rows, start=2):
        if r["found"] not in ("0", "1") or r["found_worst"] not in ("0", "1"):
            raise MarginError(f"{path} line {number}: found and found_worst are 0 or 1")
        items[(r["file"], r["id"], r["sentence"])] = (int(r["found"]), int(r["found_worst"]))
    return items


def against(out, base):
    """The markdown of OUT/retrieval.md: every model of OUT/retrieval/
    beside `base` on the same items."""
    folder = os.path.join(out, "retrieval")
    path = os.path.join(folder, f"{base}.tsv")
    if not os.path.exists(path):
        raise MarginError(f"{path}: no retrieval of --against {base} (measure it first)")
    first = read_items(path)
    rows = []
    for name in sorted(f[:-len(".tsv")] for f in os.listdir(folder) if f.endswith(".tsv")):
        if name == base:
            continue
        other_path = os.path.join(folder, f"{name}.tsv")
        second = read_items(other_path)
        if set(second) != set(first):
            raise MarginError(f"{other_path}: not the items of {path} (measured on other pairs?)")
        cells = [name]
        for column in (0, 1):
            share = 100 * sum(v[column] for v in second.values()) / len(second)
            outcomes = [(key[1], second[key][column] - first[key][column]) for key in first]
            mean, half, _ = clustered(outcomes)
            p = clustered_mcnemar(outcomes)
            cells += [f"{share:.1f}", f"{100 * mean:+.1f} ({100 * (mean - half):+.1f} to {100 * (mean + half):+.1f})",
                      f"{p:.2g}"]
        rows.append(cells)
    originals = len({key[1] for key in first})
    shares = [100 * sum(v[c] for v in first.values()) / len(first) for c in (0, 1)]
    header = ["model", "retrieval (%)", f"minus {base} (points, 95%)", "McNemar p",
              "retrieval, worst draw (%)", f"minus {base} (points, 95%)", "McNemar p"]
    return (f"Retrieval item by item against {base} ({shares[0]:.1f}% clean, {shares[1]:.1f}% under the "
            f"worst draw) on the same {len(first)} items ({originals} English originals): the "
            f"difference in points with a 95% interval and McNemar's p, both clustered by English "
            f"original (Durkalski's form; an original's languages and sentences share its draws):\n\n"
            + "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
            + "".join("| " + " | ".join(r) + " |\n" for r in rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("models", nargs="+", help="NAME=MODEL")
    parser.add_argument("--data", default="datasets/cache/debian-pairs")
    parser.add_argument("--langs", default="de,fr,ja,zh")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7, help="eval's --seed")
    parser.add_argument("--xltc", default="target/release/xltc")
    parser.add_argument("--losses", nargs="*", default=[], help="NAME=EVAL_DIR")
    parser.add_argument("--against", metavar="BASE",
                        help="write OUT/retrieval.md: every model of OUT/retrieval/ beside BASE's")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of OUT/margin.md measured on the same pairs (a model measured "
                             "again replaces its row)")
    args = parser.parse_args()
    try:
        models = [m.split("=", 1) for m in args.models]
        if any(len(m) != 2 or not m[0] or "/" in m[0] or m[0].startswith(".") for m in models):
            raise MarginError("each model is NAME=MODEL (a NAME names a file: no /, no leading dot)")
        losses = dict(m.split("=", 1) for m in args.losses)
        pairs = chosen_pairs(args.data, args.langs.split(","), args.pairs)
        with open(SYNONYMS) as f:
            neighbours = json.load(f)
        substituted = {i: draws(i, e, neighbours, args.draws, args.seed)
                       for shared in pairs.values() for i, e, _ in shared}
        rows = []
        with tempfile.TemporaryDirectory() as work:
            for number, (name, model) in enumerate(models):
                print(f"alignment_margin: {name} ({number + 1} of {len(models)})", file=sys.stderr)
                cells, items = measure(name, model, pairs, substituted, args, work, losses)
                rows.append(cells)
                write_items(args.out, name, items)
    except (MarginError, OSError, ValueError, KeyError) as e:
        print(f"alignment_margin: {e}", file=sys.stderr)
        sys.exit(2)
    counts = ", ".join(f"{language} {len(shared)}" for language, shared in pairs.items())
    header = ["model", "translations (cosine)", "other originals' translations", "gap", "retrieval (%)",
              "translations, worst draw", "others, worst draw", "gap, worst draw", "retrieval, worst draw (%)",
              "lost to the class attack", "lost to its worst draw"]
    text = (f"A translation against the other originals' translations, both sentences of each pair, over "
            f"{counts} pairs (the first {args.pairs} of each test file with an English original; "
            f"{args.data}), clean and with the English original replaced by its draw of lowest alignment "
            f"({args.draws} draws, seed {args.seed}, as xltc eval draws them). Retrieval: the share whose "
            f"own translation is the nearest of all:\n\n"
            + "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
            + "".join("| " + " | ".join(r) + " |\n" for r in rows))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "margin.md")
    if args.append and os.path.exists(path):
        with open(path) as f:
            earlier = f.read()
        intro = text[:text.index("|")]
        if not earlier.startswith(intro):
            print(f"alignment_margin: {path} was measured on other pairs or draws; not appended",
                  file=sys.stderr)
            sys.exit(2)
        names = {r[0] for r in rows}
        kept = [line + "\n" for line in earlier[len(intro):].splitlines()[2:]
                if line.startswith("| ") and line.split(" | ")[0][2:] not in names]
        table = text[len(intro):].splitlines(keepends=True)
        text = intro + "".join(table[:2]) + "".join(kept) + "".join(table[2:])
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(text, end="")
    if args.against:
        try:
            paired = against(args.out, args.against)
        except MarginError as e:
            print(f"alignment_margin: {e}", file=sys.stderr)
            sys.exit(2)
        path = os.path.join(args.out, "retrieval.md")
        with open(path + ".tmp", "w") as f:
            f.write(paired)
        os.replace(path + ".tmp", path)
        print("\n" + paired, end="")


if __name__ == "__main__":
    main()
