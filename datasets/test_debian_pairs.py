"""The benchmark builder on a small made-up apt lists folder: held-out packages
and their source siblings never appear, no source package spans two splits,
labels are balanced, negatives come from the anchor's section and never from
its source, translations keep the English ids, the parallel corpus holds no
test or dev text, and two builds give the same files.

    python3 -m unittest datasets/test_debian_pairs.py
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
STEM = "deb.debian.org_debian_dists_bookworm_main_"
SYLLABLES = ["ka", "ro", "mi", "tu", "le", "va", "no", "si", "de"]
# 81 distinct names that share no stem: karo, kami, ...
NAMES = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES][::9][:80]
INDEX = {name: i for i, name in enumerate(NAMES)}
TOPICS = ["image", "audio", "network", "database", "editor", "compiler", "game", "font"]
VERBS = ["converts", "plays", "monitors", "stores", "edits", "builds", "renders", "checks"]


def description(i, lang):
    topic, verb = TOPICS[i % len(TOPICS)], VERBS[(i // 3) % len(VERBS)]
    short = f"tool {i} that {verb} {topic} files quickly"
    long = (f"This program number {i} {verb} {topic} data for users who need a {topic} "
            f"helper, written with care in release {i} and tested on many systems.")
    if lang != "en":
        short, long = f"[{lang}] {short}", f"[{lang}] {long}"
    return f"{short}\n {long}\n .\n A second paragraph that is never used."


def write_lists(folder):
    packages, english, german = [], [], []
    for i in range(80):
        source = NAMES[i]
        names = [source] + ([f"{source}-data"] if i % 10 == 0 else [])
        for k, name in enumerate(names):
            md5 = f"{i:04d}{k:028d}"
            section = "graphics" if i % 2 else "sound"
            packages.append(f"Package: {name}\nSource: {source} (1.0)\nSection: {section}\n"
                            f"Description: x\nDescription-md5: {md5}\n")
            english.append(f"Package: {name}\nDescription-md5: {md5}\n"
                           f"Description-en: {description(i * 2 + k, 'en')}\n")
            if i % 3 != 1:
                german.append(f"Package: {name}\nDescription-md5: {md5}\n"
                              f"Description-de: {description(i * 2 + k, 'de')}\n")
    for suffix, stanzas in [("binary-amd64_Packages", packages), ("i18n_Translation-en", english),
                            ("i18n_Translation-de", german)]:
        with open(os.path.join(folder, STEM + suffix), "w") as f:
            f.write("\n".join(stanzas))


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f][1:]


class DebianPairs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = cls.tmp.name
        lists = os.path.join(root, "apt", "lists")
        os.makedirs(lists)
        write_lists(lists)
        cls.reserved = os.path.join(root, "reserved.txt")
        with open(cls.reserved, "w") as f:
            f.write(f"{NAMES[0]}-data\n{NAMES[7]}\n")

        def build(out):
            subprocess.run([sys.executable, os.path.join(HERE, "debian_pairs.py"), "--no-update",
                            "--apt-dir", os.path.join(root, "apt"), "--reserved", cls.reserved,
                            "--out", out, "--test-anchors-per-language", "12",
                            "--dev-anchors", "8", "--min-test-pairs", "4"],
                           check=True, capture_output=True)
            return out

        cls.out = build(os.path.join(root, "out"))
        cls.again = build(os.path.join(root, "again"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def examples(self):
        return read_tsv(os.path.join(self.out, "examples.tsv"))

    def test_held_out_packages_and_their_source_siblings_never_appear(self):
        used = {name for row in self.examples() for name in row[2:4]}
        # NAMES[0]-data is held out, so NAMES[0] (same source) goes too; NAMES[7] alone.
        self.assertFalse(used & {NAMES[0], NAMES[0] + "-data", NAMES[7]})
        self.assertIn(NAMES[1], used)

    def test_splits_share_no_source_and_labels_are_balanced(self):
        split_of, labels = {}, {}
        for split, _, anchor, second, label in self.examples():
            for name in (anchor, second):
                source = name.split("-")[0]
                self.assertEqual(split_of.setdefault(source, split), split, source)
            labels.setdefault(split, []).append(label)
        for split, values in labels.items():
            self.assertEqual(values.count("0"), values.count("1"), split)
        self.assertEqual(set(labels), {"train", "dev", "test"})

    def test_negatives_share_the_section_and_never_the_source(self):
        for _, _, anchor, second, label in self.examples():
            a, b = INDEX[anchor.split("-")[0]], INDEX[second.split("-")[0]]
            if label == "0":
                self.assertNotEqual(a, b)
                self.assertEqual(a % 2, b % 2, (anchor, second))

    def test_translations_keep_the_english_ids_and_cells_exist(self):
        english = {row[0]: row for row in read_tsv(os.path.join(self.out, "test-en.tsv"))}
        german = read_tsv(os.path.join(self.out, "test-de.tsv"))
        self.assertTrue(german)
        for row in german:
            self.assertIn(row[0], english)
            self.assertEqual(row[3], english[row[0]][3])
            self.assertTrue(row[1].startswith("[de] "))
        cross = read_tsv(os.path.join(self.out, "test-en-de.tsv"))
        for row in cross:
            self.assertEqual(row[1], english[row[0]][1])
            self.assertTrue(row[2].startswith("[de] "))

    def test_the_parallel_corpus_holds_no_test_or_dev_text(self):
        held_out = set()
        for name in os.listdir(self.out):
            if name.startswith(("test-", "dev-")):
                for row in read_tsv(os.path.join(self.out, name)):
                    held_out.update(row[1:3])
        with open(os.path.join(self.out, "parallel-en-de.tsv"), encoding="utf-8") as f:
            lines = [line.rstrip("\n").split("\t") for line in f]
        self.assertTrue(lines)
        for en, de in lines:
            self.assertNotIn(en, held_out)
            self.assertNotIn(de, held_out)

    def test_two_builds_are_identical(self):
        with open(os.path.join(self.out, "SHA256SUMS")) as a, \
                open(os.path.join(self.again, "SHA256SUMS")) as b:
            self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
    unittest.main()
