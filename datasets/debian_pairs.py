#!/usr/bin/env python3
"""Build xltc's offline cross-lingual benchmark from Debian's translated package descriptions.

Task (PAWS-X style, 2 labels): sentence 1 is the first paragraph of a package's
long description, sentence 2 a short description; label 1 when it is the same
package's, 0 when it is a hard negative's (the package of the same section whose
short description shares most words with the anchor's). Every translation is a
human one from Debian's Description Translation Project, aligned to English by
Description-md5. Train and dev are English only; test exists for every language
with enough translations, and for every ordered language pair (the generalized
setting: sentence 1 in A, sentence 2 in B, the same examples by id).

    python3 datasets/debian_pairs.py                 # -> datasets/cache/debian-pairs/
    python3 datasets/debian_pairs.py --out DIR --test-anchors-per-language 250 --seed 7

Only the Python standard library and apt itself are used; apt runs with a
private lists folder, so the system's apt state is never touched. See
datasets/README.md for the rules, the counts and the known weaknesses.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
from fetch import sha256_of  # noqa: E402  (one checksum helper for every script)
CACHE = os.path.join(HERE, "cache")
RESERVED = os.path.join(HERE, "..", "..", "shared", "data", "reserved-packages.txt")
APT_HELPER = "/usr/lib/apt/apt-helper"
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# Debian's translation codes asked of apt; a language is kept when its test set
# is large enough (--min-test-pairs). Output names drop the region (zh_CN -> zh).
CANDIDATE_LANGUAGES = ["de", "fr", "es", "ja", "ko", "ru", "zh_CN", "uk", "pl", "cs",
                       "it", "pt_BR", "sk", "da", "fi", "nl", "sv", "hu", "vi"]

SHORT_WORDS = (3, 30)
PARAGRAPH_WORDS = (8, 80)
BOILERPLATE = re.compile(r"transitional|dummy package|metapackage|meta-package", re.I)
WORD = re.compile(r"[a-z0-9]+")
# Words too common in short descriptions to make a negative hard.
STOPWORDS = set("""a an and are as at be by for from in into is it its of on or the this
to with without via using based your you all any other""".split())


def language_name(code):
    return code.split("_")[0].lower()


def apt_command(workdir, languages):
    """apt-get with a private sources list, lists folder and cache under `workdir`."""
    lists = os.path.join(workdir, "lists")
    sources = os.path.join(workdir, "sources.list")
    options = {
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": "/dev/null",
        "Dir::State::Lists": lists,
        "Dir::Cache": workdir,
        "Dir::State::Status": "/dev/null",
        "Acquire::Languages": ",".join(["en"] + languages),
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled": "false",
        "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled": "false",
        "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled": "false",
        "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled": "false",
        "APT::Get::List-Cleanup": "true",
    }
    command = ["apt-get", "-q"]
    for key, value in options.items():
        command += ["-o", f"{key}={value}"]
    return command


def apt_update(workdir, languages):
    """Fetch the amd64 Packages index and Translation-{en,L} into a private lists folder."""
    lists = os.path.join(workdir, "lists")
    for folder in (os.path.join(lists, "partial"), os.path.join(workdir, "archives", "partial")):
        os.makedirs(folder, exist_ok=True)
    with open(os.path.join(workdir, "sources.list"), "w") as f:
        f.write(f"deb [arch=amd64 signed-by={KEYRING}] {MIRROR} {SUITE} main\n")
    print(f"debian-pairs: apt-get update into {lists}", file=sys.stderr)
    subprocess.run(apt_command(workdir, languages) + ["update"], check=True, stdout=sys.stderr)
    return lists


def index_file(lists, suffix):
    """The file in `lists` for an index (any compression apt chose), or None."""
    stem = f"{MIRROR.split('//')[1].replace('/', '_')}_dists_{SUITE}_main_{suffix}"
    for name in sorted(os.listdir(lists)):
        if name == stem or name.startswith(stem + "."):
            return os.path.join(lists, name)
    return None


def read_index(path):
    """The decompressed text of an apt index (apt-helper knows every compression apt uses)."""
    out = subprocess.run([APT_HELPER, "cat-file", path], check=True, capture_output=True)
    return out.stdout.decode("utf-8", errors="replace")


def stanzas(text):
    """deb822 paragraphs as dicts; a continuation line keeps its leading space."""
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def clean(text):
    return " ".join(text.replace("\t", " ").split())


def split_description(text):
    """(short description, first paragraph of the long one) or None when the
    first paragraph is a list or a verbatim block rather than prose."""
    lines = text.split("\n")
    short = clean(lines[0])
    paragraph = []
    for line in lines[1:]:
        if line.strip() == ".":
            if paragraph:
                break
            continue
        if line.startswith("  ") or line.lstrip().startswith(("* ", "- ", "+ ", "o ")):
            return None
        paragraph.append(line.strip())
    return short, clean(" ".join(paragraph))


def words(text):
    return len(text.split())


def content_words(text):
    return {w for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def name_stem(name):
    """A package name without the affixes that make siblings: lib, -dev, versions..."""
    stem = re.sub(r"^lib", "", name)
    stem = re.sub(r"[-.+]?(dev|doc|common|data|bin|utils|tools|dbg|java|perl|python3?)$", "", stem)
    return re.sub(r"[-.+]?[0-9.]+[a-z]?$", "", stem)


def near_identical(a, b):
    sa, sb = name_stem(a), name_stem(b)
    return sa == sb or (len(sa) >= 4 and len(sb) >= 4 and (sa in sb or sb in sa))


def load_packages(lists):
    packages = {}
    for fields in stanzas(read_index(index_file(lists, "binary-amd64_Packages"))):
        name = fields.get("Package")
        if not name or name in packages or "Description-md5" not in fields:
            continue
        source = fields.get("Source", name).split(" ")[0]
        section = fields.get("Section", "misc").split("/")[-1]
        packages[name] = {"source": source, "section": section, "md5": fields["Description-md5"]}
    return packages


def load_translations(lists, code):
    """md5 -> (short, first paragraph) for one Translation-{code} index."""
    path = index_file(lists, f"i18n_Translation-{code.replace('_', '%5f')}")
    if path is None:
        return {}
    out = {}
    for fields in stanzas(read_index(path)):
        md5, text = fields.get("Description-md5"), fields.get(f"Description-{code}")
        if md5 and text:
            parts = split_description(text)
            if parts and parts[0] and parts[1]:
                out[md5] = parts
    return out


def reserved_exclusions(packages, path):
    """Package names to leave out: every reserved package and every package
    built from the same source package as one of them."""
    with open(path) as f:
        reserved = {line.strip() for line in f if line.strip()}
    sources = {packages[p]["source"] for p in reserved if p in packages} | reserved
    excluded = {p for p, info in packages.items() if p in reserved or info["source"] in sources}
    return excluded | reserved, len(reserved)


def choose_anchors(packages, english, translations, excluded):
    """One package a source package: the one with the most translations (then
    the one named as the source, then the first by name), with an English
    description that passes the length and boilerplate rules; descriptions
    that occur for more than one source are boilerplate and dropped."""
    seen_short, seen_paragraph = defaultdict(set), defaultdict(set)
    for name, info in packages.items():
        if info["md5"] in english:
            short, paragraph = english[info["md5"]]
            seen_short[short.lower()].add(info["source"])
            seen_paragraph[paragraph.lower()].add(info["source"])
    by_source = defaultdict(list)
    for name, info in packages.items():
        if name in excluded or info["md5"] not in english:
            continue
        short, paragraph = english[info["md5"]]
        if not (SHORT_WORDS[0] <= words(short) <= SHORT_WORDS[1]):
            continue
        if not (PARAGRAPH_WORDS[0] <= words(paragraph) <= PARAGRAPH_WORDS[1]):
            continue
        if BOILERPLATE.search(short) or BOILERPLATE.search(paragraph):
            continue
        if len(seen_short[short.lower()]) > 1 or len(seen_paragraph[paragraph.lower()]) > 1:
            continue
        by_source[info["source"]].append(name)
    anchors = {}
    for source, names in by_source.items():
        def rank(name):
            md5 = packages[name]["md5"]
            count = sum(1 for t in translations.values() if md5 in t)
            return (-count, name != source, name)
        anchors[source] = min(names, key=rank)
    return anchors


def split_sources(anchors, packages, translations, args):
    """Source packages into test, dev and train. Test is filled language by
    language, the least translated first, until each language has
    --test-anchors-per-language anchors translated into it (seeded order,
    anchors translated into more languages first); dev is drawn from the rest."""
    rng = random.Random(args.seed)
    sources = sorted(anchors)
    rng.shuffle(sources)
    languages_of = {s: {c for c, t in translations.items() if packages[anchors[s]]["md5"] in t}
                    for s in sources}
    ranked = sorted(sources, key=lambda s: -len(languages_of[s]))
    order = sorted(translations, key=lambda c: sum(c in languages_of[s] for s in sources))
    test, chosen = [], set()
    for code in order:
        have = sum(code in languages_of[s] for s in test)
        for s in ranked:
            if have >= args.test_anchors_per_language:
                break
            if s not in chosen and code in languages_of[s]:
                test.append(s)
                chosen.add(s)
                have += 1
    rest = [s for s in sources if s not in chosen]
    dev = rest[:args.dev_anchors]
    train = rest[args.dev_anchors:]
    return {"train": train, "dev": dev, "test": test}, languages_of


def hard_negatives(names, packages, english, languages_of, rng):
    """For each anchor, a package of the same split and section whose short
    description shares many content words with its own (at least half the
    most any shares), preferring one translated into the anchor's rarest
    languages, so that the pair exists in them (ties: more shared words,
    fewer words in all, then name); never the same source or a
    near-identical name. Without any shared word, a seeded draw from the
    section."""
    words_of = {n: content_words(english[packages[n]["md5"]][0]) for n in names}
    # A language's weight: one over the anchors translated into it.
    counts = defaultdict(int)
    for n in names:
        for code in languages_of[n]:
            counts[code] += 1
    rarity = {code: 1.0 / count for code, count in counts.items()}
    index = defaultdict(lambda: defaultdict(list))
    for n in names:
        for w in words_of[n]:
            index[packages[n]["section"]][w].append(n)
    by_section = defaultdict(list)
    for n in names:
        by_section[packages[n]["section"]].append(n)
    negatives = {}
    for n in names:
        section = packages[n]["section"]
        overlap = defaultdict(int)
        for w in words_of[n]:
            for other in index[section][w]:
                overlap[other] += 1

        def allowed(other):
            return (other != n and packages[other]["source"] != packages[n]["source"]
                    and not near_identical(other, n))

        candidates = [o for o in overlap if allowed(o)]
        if candidates:
            # Hard enough: at least half the best overlap; among those, the one
            # that shares the anchor's rarest languages (so the pair exists in
            # them), then the largest overlap.
            best = max(overlap[o] for o in candidates)
            hard = [o for o in candidates if 2 * overlap[o] >= best]
            mine = languages_of[n]

            def shared_rarity(o):
                # Summed in a fixed order: set order varies with PYTHONHASHSEED.
                return sum(rarity[code] for code in sorted(mine & languages_of[o]))

            negatives[n] = min(hard, key=lambda o: (-shared_rarity(o), -overlap[o],
                                                    len(words_of[o]), o))
            continue
        pool = [o for o in by_section[section] if allowed(o)] or [o for o in names if allowed(o)]
        negatives[n] = rng.choice(sorted(pool)) if pool else None
    return negatives


def examples(split_names, negatives, rng):
    """One positive and one negative an anchor, shuffled; ids number them."""
    rows = []
    for n in split_names:
        if negatives[n] is None:
            continue  # no package may serve as its negative: left out, labels stay balanced
        rows.append((n, n, 1))
        rows.append((n, negatives[n], 0))
    rng.shuffle(rows)
    return [(i, a, b, label) for i, (a, b, label) in enumerate(rows)]


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("id\tsentence1\tsentence2\tlabel\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")


def build(args, lists, tmp):
    packages = load_packages(lists)
    english = load_translations(lists, "en")
    translations = {}
    for code in CANDIDATE_LANGUAGES:
        table = load_translations(lists, code)
        # A "translation" equal to the English text is an untranslated copy.
        translations[code] = {m: t for m, t in table.items()
                              if m in english and t[0] != english[m][0] and t[1] != english[m][1]}
    excluded, reserved_count = reserved_exclusions(packages, args.reserved)
    anchors = choose_anchors(packages, english, translations, excluded)
    splits, languages_of_source = split_sources(anchors, packages, translations, args)
    languages_of = {anchors[s]: langs for s, langs in languages_of_source.items()}
    rng = random.Random(args.seed)
    names = {split: sorted(anchors[s] for s in sources) for split, sources in splits.items()}
    rows = {}
    for split in ("train", "dev", "test"):
        negatives = hard_negatives(names[split], packages, english, languages_of, rng)
        rows[split] = examples(names[split], negatives, rng)

    def english_row(i, a, b, label):
        return (i, english[packages[a]["md5"]][1], english[packages[b]["md5"]][0], label)

    write_tsv(os.path.join(tmp, "train-en.tsv"), [english_row(*r) for r in rows["train"]])
    write_tsv(os.path.join(tmp, "dev-en.tsv"), [english_row(*r) for r in rows["dev"]])
    tables = {"en": english}
    languages = ["en"]
    skipped = {}
    for code in CANDIDATE_LANGUAGES:
        table = translations[code]
        count = sum(1 for _, a, b, _ in rows["test"]
                    if packages[a]["md5"] in table and packages[b]["md5"] in table)
        if count >= args.min_test_pairs:
            tables[language_name(code)] = table
            languages.append(language_name(code))
        else:
            skipped[code] = count
    cells = {}
    held_out = set()  # every text of a test or dev file, kept out of the parallel corpus
    for _, a, b, _ in rows["dev"]:
        held_out.update((english[packages[a]["md5"]][1], english[packages[b]["md5"]][0]))
    for a in languages:
        for b in languages:
            selected = []
            for i, anchor, second, label in rows["test"]:
                m1, m2 = packages[anchor]["md5"], packages[second]["md5"]
                if m1 in tables[a] and m2 in tables[b]:
                    selected.append((i, tables[a][m1][1], tables[b][m2][0], label))
                    held_out.update(selected[-1][1:3])
            name = f"test-{a}.tsv" if a == b else f"test-{a}-{b}.tsv"
            write_tsv(os.path.join(tmp, name), selected)
            cells[name] = len(selected)
    train_sources = set(splits["train"])
    train_names = {p for p, info in packages.items() if info["source"] in train_sources}
    parallel = {}
    for code in CANDIDATE_LANGUAGES:
        lang = language_name(code)
        if lang not in tables:
            continue
        lines = set()
        for p in sorted(train_names - excluded):
            md5 = packages[p]["md5"]
            if md5 in tables[lang]:
                for part in (0, 1):
                    line = (english[md5][part], tables[lang][md5][part])
                    if line[0] not in held_out and line[1] not in held_out:
                        lines.add(line)
        with open(os.path.join(tmp, f"parallel-en-{lang}.tsv"), "w", encoding="utf-8") as f:
            for en, other in sorted(lines):
                f.write(f"{en}\t{other}\n")
        parallel[lang] = len(lines)
    with open(os.path.join(tmp, "examples.tsv"), "w", encoding="utf-8") as f:
        f.write("split\tid\tanchor\tsecond\tlabel\n")
        for split in ("train", "dev", "test"):
            for i, a, b, label in rows[split]:
                f.write(f"{split}\t{i}\t{a}\t{b}\t{label}\n")
    return {
        "packages": len(packages),
        "english_descriptions": len(english),
        "reserved_names": reserved_count,
        "excluded_packages": len(excluded & set(packages)),
        "anchor_sources": len(anchors),
        "anchors": {split: len(n) for split, n in names.items()},
        "pairs": {split: len(r) for split, r in rows.items()},
        "languages": languages,
        "languages_skipped_test_pairs": skipped,
        "test_files": cells,
        "parallel_lines": parallel,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(CACHE, "debian-pairs"))
    parser.add_argument("--apt-dir", default=os.path.join(CACHE, "apt"),
                        help="private apt folder for the indexes (kept as a cache)")
    parser.add_argument("--reserved", default=RESERVED)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--test-anchors-per-language", type=int, default=250)
    parser.add_argument("--dev-anchors", type=int, default=500)
    parser.add_argument("--min-test-pairs", type=int, default=100)
    parser.add_argument("--no-update", action="store_true",
                        help="use the indexes already in --apt-dir")
    args = parser.parse_args()
    if not os.path.exists(args.reserved):
        sys.exit(f"debian-pairs: {args.reserved}: the held-out package list is missing")
    lists = os.path.join(args.apt_dir, "lists")
    if not args.no_update:
        lists = apt_update(args.apt_dir, CANDIDATE_LANGUAGES)
    if index_file(lists, "binary-amd64_Packages") is None:
        sys.exit(f"debian-pairs: no Packages index in {lists}; run without --no-update")
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".debian-pairs.", dir=os.path.dirname(out))
    try:
        counts = build(args, lists, tmp)
        inputs = {os.path.basename(p): sha256_of(p) for p in
                  sorted(os.path.join(lists, n) for n in os.listdir(lists))
                  if os.path.isfile(p) and not p.endswith("lock")}
        counts.update(seed=args.seed, test_anchors_per_language=args.test_anchors_per_language,
                      dev_anchors=args.dev_anchors, min_test_pairs=args.min_test_pairs,
                      apt_indexes_sha256=inputs)
        with open(os.path.join(tmp, "build.json"), "w") as f:
            json.dump(counts, f, indent=1, sort_keys=True)
        sums = [f"{sha256_of(os.path.join(tmp, n))}  {n}\n" for n in sorted(os.listdir(tmp))
                if n != "build.json"]
        with open(os.path.join(tmp, "SHA256SUMS"), "w") as f:
            f.writelines(sums)
        os.chmod(tmp, 0o755)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    print(json.dumps({k: counts[k] for k in ("languages", "anchors", "pairs")}), file=sys.stderr)
    print(out)


if __name__ == "__main__":
    main()
