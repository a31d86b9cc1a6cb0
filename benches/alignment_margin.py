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
(strictly; ties count as misses). Embeddings come from `xltc run --cpu
--truncate --json` (the CPU reference, eval's own embedding: the same
cosines to the last printed digit). With --losses EVAL_DIR per model
(NAME=DIR, its eval/ folder's pairs.tsv), the mean alignment each attack
takes is also given as a share of the gap.

Writes OUT/margin.md (and prints it). Standard library only.
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

# Base-model class of each model_type, for an encoder without its head.
ENCODERS = {"bert": "BertModel", "xlm-roberta": "XLMRobertaModel"}


class MarginError(Exception):
    pass


def read_pairs(path):
    """{id: (sentence1, sentence2)} of a test TSV, in file order."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except OSError as e:
        raise MarginError(f"{path}: {e.strerror}") from e
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
    with the other originals' translations, retrieval share). Retrieval
    compares each original's translation with every other distinct
    translation text, strictly."""
    n = len(english)
    own, other, found = 0.0, [], 0
    for i in range(n):
        e = vectors[english[i]]
        mine = dot(e, vectors[translated[i]])
        own += mine
        rest = [dot(e, vectors[translated[j]]) for j in range(n) if j != i]
        other += rest
        rivals = {translated[j] for j in range(n) if translated[j] != translated[i]}
        if all(mine > dot(e, vectors[t]) for t in rivals):
            found += 1
    return own / n, sum(other) / len(other) if other else float("nan"), found / n


def chosen_pairs(data, language, count):
    """(English original, translation) sentence pairs of the first `count`
    pairs of test-{language}.tsv that test-en.tsv holds."""
    english = read_pairs(os.path.join(data, "test-en.tsv"))
    translated = read_pairs(os.path.join(data, f"test-{language}.tsv"))
    shared = [(english[i], translated[i]) for i in list(translated)[:count] if i in english]
    # `xltc run --file` skips lines that start with # or are empty.
    return [(e, t) for e, t in shared if not any(s.startswith("#") or not s.strip() for s in e + t)]


def mean_losses(pairs_tsv):
    """Mean alignment lost to the class attack and to the worst draw over
    the translation pairs of an evaluation's pairs.tsv."""
    with open(pairs_tsv, newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r["english"] != ""]
    out = []
    for column in ("alignment_attacked", "alignment_worst"):
        values = [float(r["alignment"]) - float(r[column]) for r in rows if r.get(column, "") != ""]
        out.append(sum(values) / len(values) if values else None)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("models", nargs="+", help="NAME=MODEL")
    parser.add_argument("--data", default="datasets/cache/debian-pairs")
    parser.add_argument("--langs", default="de,fr,ja,zh")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--xltc", default="target/release/xltc")
    parser.add_argument("--losses", nargs="*", default=[], help="NAME=EVAL_DIR")
    args = parser.parse_args()
    try:
        models = [m.split("=", 1) for m in args.models]
        losses = dict(m.split("=", 1) for m in args.losses)
        if any(len(m) != 2 for m in models):
            raise MarginError("each model is NAME=MODEL")
        languages = args.langs.split(",")
        pairs = {language: chosen_pairs(args.data, language, args.pairs) for language in languages}
        rows = []
        with tempfile.TemporaryDirectory() as work:
            for number, (name, model) in enumerate(models):
                print(f"alignment_margin: {name} ({number + 1} of {len(models)})", file=sys.stderr)
                encoder = strip_head(model, os.path.join(work, f"model-{number}"))
                sentences = sorted({s for shared in pairs.values() for e, t in shared for s in e + t})
                vectors = embed(args.xltc, encoder, sentences, work)
                figures = []
                for language, shared in pairs.items():
                    for slot in (0, 1):
                        figures.append(margins([e[slot] for e, _ in shared], [t[slot] for _, t in shared],
                                               vectors))
                own, other, found = (sum(f[k] for f in figures) / len(figures) for k in range(3))
                gap = own - other
                cells = [name, f"{own:.4f}", f"{other:.4f}", f"{gap:.4f}", f"{100 * found:.1f}"]
                if name in losses:
                    attack, worst = mean_losses(os.path.join(losses[name], "pairs.tsv"))
                    cells += [f"{v:.4f} ({100 * v / gap:.1f}% of the gap)" if v is not None else "-"
                              for v in (attack, worst)]
                else:
                    cells += ["-", "-"]
                rows.append(cells)
                if os.path.isdir(encoder) and encoder.startswith(work):
                    shutil.rmtree(encoder)
    except (MarginError, OSError, ValueError) as e:
        print(f"alignment_margin: {e}", file=sys.stderr)
        sys.exit(2)
    counts = ", ".join(f"{language} {len(shared)}" for language, shared in pairs.items())
    header = ["model", "translations (cosine)", "other originals' translations", "gap",
              "retrieval (%)", "lost to the class attack", "lost to its worst draw"]
    text = (f"Translation against non-translation, both sentences of each pair, over {counts} pairs "
            f"(the first {args.pairs} of each test file with an English original; {args.data}):\n\n"
            + "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
            + "".join("| " + " | ".join(r) + " |\n" for r in rows))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "margin.md")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(text, end="")


if __name__ == "__main__":
    main()
