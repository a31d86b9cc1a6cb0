#!/usr/bin/env python3
"""Bilingual word lists for cross-lingual substitution, from Debian's FreeDict packages.

RS-DA replaces an English word by a draw from itself and its neighbours; given
a translation list instead of synonym sets, the same rule replaces it by a
translation (code-switching, the variant the paper did not try). This script
fetches dict-freedict-eng-{L} from Debian (a package registry, with a private
apt folder as datasets/debian_pairs.py uses), reads its dictd files and writes
one JSON file a language in the synonym sets' format, English word -> list of
single-word translations, and one that merges every language:

    python3 datasets/freedict.py                      # -> datasets/cache/freedict/eng-{deu,fra,spa}.json, eng-all.json
    python3 datasets/freedict.py --languages deu fra --max-translations 8
    xltc train MODEL --method rs-da --synonyms datasets/cache/freedict/eng-deu.json ...

A headword is kept when it is one lower-case word and the entry is its own
(not an abbreviation's expansion); a translation when it is one word once its
grammar and domain labels (<fem>, [zool.]) are removed. Only the standard
library, apt and dpkg-deb are used.
"""
import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from debian_pairs import apt_command, apt_update  # noqa: E402  (one private apt setup)

CACHE = os.path.join(HERE, "cache")
LANGUAGES = ["deu", "fra", "spa"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
LABEL = re.compile(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)")
HEADWORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def dictd_number(text):
    """A dictd index number: base 64 in the alphabet A-Z a-z 0-9 + /."""
    value = 0
    for c in text:
        value = value * 64 + B64.index(c)
    return value


def translations(entry, headword):
    """The single-word translations of a dictd entry of `headword`, in order; none
    when the entry belongs to another headword (an abbreviation's expansion)."""
    lines = entry.split("\n")
    if len(lines) < 2 or lines[0].split(" /")[0].strip() != headword:
        return []
    out = []
    for part in LABEL.sub("", lines[1]).split(","):
        word = part.strip()
        if WORD.fullmatch(word) and word not in out and word.lower() != headword:
            out.append(word)
    return out


def read_dictionary(index_text, data, max_translations):
    """English word -> translations from a dictd index and its (decompressed) data."""
    words = {}
    for line in index_text.splitlines():
        fields = line.split("\t")
        if len(fields) != 3 or not HEADWORD.fullmatch(fields[0]):
            continue
        headword, offset, length = fields[0], dictd_number(fields[1]), dictd_number(fields[2])
        entry = data[offset:offset + length].decode("utf-8", errors="replace")
        found = words.setdefault(headword, [])
        for word in translations(entry, headword):
            if word not in found and len(found) < max_translations:
                found.append(word)
    return {w: t for w, t in sorted(words.items()) if t}


def merge(dictionaries, max_translations):
    """Every language's translations of a word, languages in order, at most
    `max_translations` from each."""
    merged = {}
    for words in dictionaries:
        for word, found in words.items():
            merged.setdefault(word, []).extend(found[:max_translations])
    return dict(sorted(merged.items()))


def write_json(path, words):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(words, f, ensure_ascii=False, indent=0, sort_keys=True)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(CACHE, "freedict"))
    parser.add_argument("--apt-dir", default=os.path.join(CACHE, "apt-freedict"),
                        help="private apt folder (kept as a cache)")
    parser.add_argument("--languages", nargs="+", default=LANGUAGES,
                        help="FreeDict codes of the target languages (eng-L packages)")
    parser.add_argument("--max-translations", type=int, default=8,
                        help="translations kept a word and language (the synonym sets keep up to 8)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    apt_update(args.apt_dir, [])
    packages = [f"dict-freedict-eng-{code}" for code in args.languages]
    work = tempfile.mkdtemp(prefix=".freedict.", dir=args.out)
    try:
        subprocess.run(apt_command(args.apt_dir, []) + ["download"] + packages, cwd=work,
                       check=True, stdout=sys.stderr)
        dictionaries = []
        summary = {}
        for code, package in zip(args.languages, packages):
            deb = next(n for n in os.listdir(work) if n.startswith(package + "_"))
            unpacked = os.path.join(work, code)
            subprocess.run(["dpkg-deb", "-x", os.path.join(work, deb), unpacked], check=True)
            stem = os.path.join(unpacked, "usr", "share", "dictd", f"freedict-eng-{code}")
            with open(stem + ".index", encoding="utf-8") as f:
                index_text = f.read()
            with gzip.open(stem + ".dict.dz") as f:
                data = f.read()
            words = read_dictionary(index_text, data, args.max_translations)
            write_json(os.path.join(args.out, f"eng-{code}.json"), words)
            dictionaries.append(words)
            summary[code] = {"package": deb, "words": len(words),
                             "translations": sum(len(t) for t in words.values())}
        write_json(os.path.join(args.out, "eng-all.json"),
                   merge(dictionaries, args.max_translations))
        print(json.dumps(summary), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out)


if __name__ == "__main__":
    main()
