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
        own, other, found = alignment_margin.margins(["a", "b", "c"], ["x", "y", "z"], vectors)
        self.assertAlmostEqual(own, 2.6 / 3)
        self.assertAlmostEqual(other, 3.2 / 6)
        self.assertAlmostEqual(found, 1 / 3)

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
            self.assertEqual(alignment_margin.chosen_pairs(root, "de", 3),
                             [(("one", "One"), ("eins", "Eins"))])

    def test_a_missing_file_is_named(self):
        with tempfile.TemporaryDirectory() as root:
            result = subprocess.run([sys.executable, SCRIPT, os.path.join(root, "out"), "m=nowhere",
                                     "--data", root, "--langs", "de"], capture_output=True, text=True)
            self.assertEqual(result.returncode, 2)
            self.assertIn(os.path.join(root, "test-en.tsv"), result.stderr)
            self.assertFalse(os.path.exists(os.path.join(root, "out", "margin.md")))

    def test_mean_losses_of_translation_pairs(self):
        with tempfile.TemporaryDirectory() as root:
            path = os.path.join(root, "pairs.tsv")
            with open(path, "w") as f:
                f.write("file\tid\tenglish\talignment\talignment_attacked\talignment_worst\n"
                        "test-en.tsv\t1\t\t\t\t\n"
                        "test-de.tsv\t1\t1\t0.9\t0.8\t0.7\n"
                        "test-de.tsv\t2\t0\t0.9\t0.9\t0.5\n")
            attack, worst = alignment_margin.mean_losses(path)
        self.assertAlmostEqual(attack, 0.05)
        self.assertAlmostEqual(worst, 0.3)


if __name__ == "__main__":
    unittest.main()
