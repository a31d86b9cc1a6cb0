"""Tests of benches/alignment_margin.py on hand-made embeddings, files and
checkpoints (no model runs): python3 -m unittest benches/test_alignment_margin.py"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignment_margin  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "alignment_margin.py")


def write_safetensors(path, tensors):
    """tensors: {name: list of float32 values}, stored in the given order."""
    header, data = {}, b""
    for name, values in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": [len(values)], "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read_safetensors(path):
    with open(path, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
        data = f.read()
    return {name: list(struct.unpack(f"<{(end - start) // 4}f", data[start:end]))
            for name, info in header.items() if name != "__metadata__"
            for start, end in [info["data_offsets"]]}, header.get("__metadata__")


class Margins(unittest.TestCase):
    def test_by_hand(self):
        # a, b, c and their translations x, y, z (unit vectors):
        # own a.x 1, b.y 0.8, c.z 0.8; others a.y 0.6, a.z 0, b.x 0, b.z 1,
        # c.x 0.6, c.y 1; only a's translation is its nearest.
        vectors = {"a": [1, 0], "b": [0, 1], "c": [0.6, 0.8], "x": [1, 0], "y": [0.6, 0.8], "z": [0, 1]}
        own, other, found, each = alignment_margin.margins(["a", "b", "c"], ["x", "y", "z"], vectors)
        self.assertAlmostEqual(own, 2.6 / 3)
        self.assertAlmostEqual(other, 3.2 / 6)
        self.assertAlmostEqual(found, 1 / 3)
        self.assertEqual(each, [True, False, False])

    def test_a_repeated_translation_is_no_rival_and_ties_are_misses(self):
        vectors = {"a": [1, 0], "b": [0.6, 0.8], "c": [0, 1], "x": [1, 0], "z": [1, 0]}
        # x translates a and b both, so it is no rival to either; z, the
        # same vector as x, ties with each (a miss), and x ties with c's z.
        found = alignment_margin.margins(["a", "b", "c"], ["x", "x", "z"], vectors)[2]
        self.assertAlmostEqual(found, 0.0)
        vectors["z"] = [0, 1]
        found = alignment_margin.margins(["a", "b"], ["x", "z"], vectors)[2]
        # a: 1 against 0; b: its own z gives 0.8 against x's 0.6.
        self.assertAlmostEqual(found, 1.0)


class Draws(unittest.TestCase):
    """eval's substitutions replayed: its generator, hash and rule."""

    def test_splitmix64_and_fnv1a_known_answers(self):
        # SplitMix64 from seed 0 (Vigna's reference), FNV-1a 64 of "a".
        rng = alignment_margin.SplitMix64(0)
        self.assertEqual([rng.next_u64() for _ in range(2)], [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4])
        self.assertEqual(alignment_margin.fnv1a("a"), 0xAF63DC4C8601EC8C)
        self.assertEqual(alignment_margin.fnv1a(""), 0xCBF29CE484222325)

    def test_below_is_lemires_draw(self):
        # The high 64 bits of the output times n, as long as the low bits
        # clear the threshold (never a retry for n = 3 on these).
        rng, again = alignment_margin.SplitMix64(5), alignment_margin.SplitMix64(5)
        for _ in range(20):
            self.assertEqual(rng.below(3), (again.next_u64() * 3) >> 64)

    def test_the_rule(self):
        neighbours = {"good": ["fine", "nice"], "film": ["movie"]}
        rng = alignment_margin.SplitMix64(1)
        seen = {}
        for _ in range(3000):
            out = alignment_margin.perturb("A good film, good.", neighbours, rng)
            # Split on single spaces, exact lookup: "film," and "good." stay.
            self.assertEqual(out.split(" ")[0::2], ["A", "film,"])
            self.assertEqual(out.split(" ")[3], "good.")
            seen[out.split(" ")[1]] = seen.get(out.split(" ")[1], 0) + 1
        # A uniform draw from the word and its two neighbours: 1000 each,
        # within 4.5 standard deviations (sqrt(3000 / 3 * 2 / 3) = 25.8).
        self.assertEqual(set(seen), {"good", "fine", "nice"})
        for count in seen.values():
            self.assertLess(abs(count - 1000), 4.5 * 25.8)
        # A sentence without substitutable words takes no draw.
        rng, again = alignment_margin.SplitMix64(3), alignment_margin.SplitMix64(3)
        self.assertEqual(alignment_margin.perturb("nothing here", neighbours, rng), "nothing here")
        self.assertEqual(rng.next_u64(), again.next_u64())


class Checkpoint(unittest.TestCase):
    def test_the_head_is_left_out(self):
        with tempfile.TemporaryDirectory() as root:
            source = os.path.join(root, "best")
            os.makedirs(source)
            write_safetensors(os.path.join(source, "model.safetensors"),
                              {"classifier.weight": [1, 2, 3, 4], "embeddings.word": [5, 6],
                               "classifier.bias": [7, 8], "pooler.dense.bias": [9]})
            with open(os.path.join(source, "config.json"), "w") as f:
                json.dump({"architectures": ["BertForSequenceClassification"], "model_type": "bert",
                           "hidden_size": 2}, f)
            with open(os.path.join(source, "tokenizer.json"), "w") as f:
                f.write("{}")
            target = alignment_margin.strip_head(source, os.path.join(root, "encoder"))
            tensors, metadata = read_safetensors(os.path.join(target, "model.safetensors"))
            self.assertEqual(tensors, {"embeddings.word": [5.0, 6.0], "pooler.dense.bias": [9.0]})
            self.assertEqual(metadata, {"format": "pt"})
            with open(os.path.join(target, "config.json")) as f:
                config = json.load(f)
            self.assertEqual(config["architectures"], ["BertModel"])
            self.assertEqual(config["hidden_size"], 2)
            self.assertTrue(os.path.exists(os.path.join(target, "tokenizer.json")))
            # Already an encoder: used as it is.
            self.assertEqual(alignment_margin.strip_head(target, os.path.join(root, "again")), target)


class Data(unittest.TestCase):
    def write(self, root, name, rows):
        with open(os.path.join(root, name), "w") as f:
            f.write("id\tsentence1\tsentence2\tlabel\n" + "".join("\t".join(r) + "\t1\n" for r in rows))

    def test_first_pairs_with_an_english_original(self):
        with tempfile.TemporaryDirectory() as root:
            self.write(root, "test-en.tsv", [("1", "one", "One"), ("2", "# two", "Two"), ("3", "three", "Three")])
            # 9 has no English original; 2's original starts with # (xltc
            # run --file would skip it); 3 is past the first three.
            self.write(root, "test-de.tsv", [("9", "neun", "Neun"), ("2", "zwei", "Zwei"), ("1", "eins", "Eins"),
                                             ("3", "drei", "Drei")])
            self.assertEqual(alignment_margin.chosen_pairs(root, ["de"], 3),
                             {"de": [("1", ("one", "One"), ("eins", "Eins"))]})

    def test_a_missing_file_is_named(self):
        with tempfile.TemporaryDirectory() as root:
            result = subprocess.run([sys.executable, SCRIPT, os.path.join(root, "out"), "m=nowhere",
                                     "--data", root, "--langs", "de"], capture_output=True, text=True)
            self.assertEqual(result.returncode, 2)
            self.assertIn(os.path.join(root, "test-en.tsv"), result.stderr)
            self.assertFalse(os.path.exists(os.path.join(root, "out", "margin.md")))

    def test_whole_run_with_a_stand_in_for_xltc_and_append(self):
        # A stand-in for `xltc run --json`: a sentence's embedding counts
        # its letters a, e, i and its length, so every step but the model
        # runs for real.
        with tempfile.TemporaryDirectory() as root:
            fake = os.path.join(root, "xltc")
            with open(fake, "w") as f:
                f.write(f"#!{sys.executable}\nimport json, sys\n"
                        "for line in open(sys.argv[sys.argv.index('--file') + 1]):\n"
                        "    s = line.rstrip('\\n')\n"
                        "    print(json.dumps({'cosine': None, 'embedding': "
                        "[s.count('a'), s.count('e'), s.count('i'), len(s) / 10]}))\n")
            os.chmod(fake, 0o755)
            model = os.path.join(root, "encoder")
            os.makedirs(model)
            with open(os.path.join(model, "config.json"), "w") as f:
                json.dump({"architectures": ["BertModel"], "model_type": "bert"}, f)
            self.write(root, "test-en.tsv", [("1", "a cat", "a mat"), ("2", "see me", "bee tree"),
                                             ("3", "in it", "big kid")])
            self.write(root, "test-de.tsv", [("1", "aa", "aaa"), ("2", "ee", "eee"), ("3", "ii", "iii")])
            out = os.path.join(root, "out")

            def run(*names, extra=()):
                result = subprocess.run([sys.executable, SCRIPT, out, *(f"{n}={model}" for n in names),
                                         "--data", root, "--langs", "de", "--xltc", fake, "--append",
                                         *extra],
                                        capture_output=True, text=True)
                self.assertEqual(result.returncode, 0, result.stderr)
                with open(os.path.join(out, "margin.md")) as f:
                    return [l.split(" | ") for l in f.read().splitlines() if l.startswith("| ")][1:]

            first = run("one")
            # By hand: "a cat" [2, 0, 0, 0.5] with "aa" [2, 0, 0, 0.2]:
            # 4.1 / (2.0616 x 2.0100) = 0.98943; the translations' cosines
            # average 0.99136 (first sentences) and 0.98556 (second), 0.9885;
            # the others' (0.5 x 0.2 = 0.1 over the norms, ...) 0.02259 and
            # 0.02550, 0.0240. Each English sentence is nearest its own
            # translation (a, e, i).
            self.assertEqual(first[0][:5], ["| one", "0.9885", "0.0240", "0.9644", "100.0"])
            self.assertEqual([r[0] for r in run("two")], ["| one", "| two"])
            # Measured again: its row replaced, not repeated.
            self.assertEqual([r[0] for r in run("one")], ["| two", "| one"])
            # Item by item: three ids, two sentences each, all found; the
            # same model under another name differs by nothing.
            items = alignment_margin.read_items(os.path.join(out, "retrieval", "one.tsv"))
            self.assertEqual(len(items), 6)
            self.assertEqual(items[("test-de.tsv", "2", "1")][0], 1)
            run("two", extra=("--against", "one"))
            with open(os.path.join(out, "retrieval.md")) as f:
                rows = [l.split(" | ") for l in f.read().splitlines() if l.startswith("| ")][1:]
            self.assertEqual(rows[0][:4], ["| two", "100.0", "+0.0 (+0.0 to +0.0)", "1"])

    def write_items(self, folder, name, rows):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}.tsv"), "w") as f:
            f.write("file\tid\tsentence\tfound\tfound_worst\n")
            f.write("".join("\t".join(map(str, r)) + "\n" for r in rows))

    def test_retrieval_against_a_base_by_hand(self):
        with tempfile.TemporaryDirectory() as out:
            folder = os.path.join(out, "retrieval")
            keys = [("test-de.tsv", i, s) for i in (1, 2, 3) for s in (1, 2)]
            self.write_items(folder, "base", [k + (0, 1) for k in keys])
            # Found: both sentences of id 1, one of id 2, none of id 3.
            self.write_items(folder, "new", [k + (int(k[1] == 1 or k == ("test-de.tsv", 2, 1)), 1)
                                             for k in keys])
            text = alignment_margin.against(out, "base")
            row = [l for l in text.splitlines() if l.startswith("| new")][0].rstrip(" |").split(" | ")
            # Differences 1, 1 | 1, 0 | 0, 0: mean 0.5; cluster sums 2, 1, 0,
            # variance 2 x 3/2 / 36, half-width 1.96 x 0.28868 = 0.5658;
            # Durkalski: 3^2 / (4 + 1) = 1.8, p = erfc(sqrt(0.9)) = 0.18.
            self.assertEqual(row[1:4], ["50.0", "+50.0 (-6.6 to +106.6)", "0.18"])
            self.assertEqual(row[4:7], ["100.0", "+0.0 (+0.0 to +0.0)", "1"])
            self.write_items(folder, "other-pairs", [k + (1, 1) for k in keys[:4]])
            with self.assertRaisesRegex(alignment_margin.MarginError, "other-pairs.tsv: not the items"):
                alignment_margin.against(out, "base")
            with self.assertRaisesRegex(alignment_margin.MarginError, "no retrieval of --against missing"):
                alignment_margin.against(out, "missing")
            self.write_items(folder, "other-pairs", [keys[0] + (2, 1)])
            with self.assertRaisesRegex(alignment_margin.MarginError, "other-pairs.tsv line 2: found"):
                alignment_margin.against(out, "base")

    def test_mean_losses_of_translation_pairs(self):
        with tempfile.TemporaryDirectory() as root:
            path = os.path.join(root, "pairs.tsv")
            with open(path, "w") as f:
                f.write("file\tid\tenglish\talignment\talignment_attacked\talignment_worst\n"
                        "test-en.tsv\t1\t\t\t\t\n"
                        "test-de.tsv\t1\t1\t0.9\t0.8\t0.7\n"
                        "test-de.tsv\t2\t0\t0.9\t0.9\t0.5\n")
            attack, worst = alignment_margin.mean_losses(alignment_margin.read_tsv(path))
        self.assertAlmostEqual(attack, 0.05)
        self.assertAlmostEqual(worst, 0.3)


if __name__ == "__main__":
    unittest.main()
