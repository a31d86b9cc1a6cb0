"""compare_methods.py --seeds on hand-made runs: each cell is the mean,
sample standard deviation and range of the runs that learned; agreement and
alignment are pooled over the pairs of all languages; a run whose
best dev-en stays under --learned-above is counted, named and left out of
the means; the scatter's axes stay inside [0, 1]; what the attack takes of
agreement and alignment is shown only where both rest on the same pairs.

    python3 -m unittest benches/test_compare_methods.py
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_methods.py")


def write_run(folder, method, dev, mean, agreement, alignment, consistency=None):
    """A run as robust_experiment.sh leaves it: log.jsonl with dev checks and
    eval/report.json. Every metric but the ones named is a fixed 0.5."""
    os.makedirs(os.path.join(folder, method, "eval"))
    with open(os.path.join(folder, method, "log.jsonl"), "w") as f:
        f.write(json.dumps({"step": 1, "loss": 0.7}) + "\n")
        for d in dev:
            f.write(json.dumps({"step": 2, "dev_accuracy": d}) + "\n")
    # de's 60 attacked pairs have the run's agreement, zh's 4 none: pooled
    # over the 64 pairs, not the mean of the two languages' figures.
    consistency = consistency or [{"language": "de", "shared_pairs": 100, "perturbed_pairs": 60,
                    "agreement": agreement, "attacked_agreement": agreement,
                    "alignment": alignment, "attacked_alignment": alignment},
                   {"language": "zh", "shared_pairs": 100, "perturbed_pairs": 4,
                    "agreement": agreement, "attacked_agreement": 0.0,
                    "alignment": alignment, "attacked_alignment": alignment}]
    report = {"evaluation": {
        "averages": {"languages": mean, "languages_without_english": 0.5, "matrix": 0.5,
                     "matrix_off_diagonal": 0.5},
        "robustness": {"perturbed_accuracy": 0.5, "worst_of_k_accuracy": 0.5},
        "consistency": consistency}}
    with open(os.path.join(folder, method, "eval", "report.json"), "w") as f:
        json.dump(report, f)


class Seeds(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = self.tmp.name
        self.folders = [os.path.join(root, f"seed-{s}") for s in (7, 8, 9)]
        # Two runs that learned (best dev 0.86 and 0.90) and one that sat on
        # the majority class (0.505 at every check) and so agrees with itself.
        write_run(self.folders[0], "vanilla", [0.505, 0.86, 0.80], 0.80, 0.70, 0.90)
        write_run(self.folders[1], "vanilla", [0.60, 0.90], 0.84, 0.74, 0.92)
        write_run(self.folders[2], "vanilla", [0.505, 0.505], 0.51, 1.0, 0.998)
        self.out = os.path.join(root, "out")
        os.makedirs(self.out)

    def tearDown(self):
        self.tmp.cleanup()

    def run_seeds(self, *extra):
        subprocess.run([sys.executable, SCRIPT, "--seeds", self.out, *extra, *self.folders],
                       check=True, capture_output=True, text=True)
        with open(os.path.join(self.out, "seeds.md")) as f:
            table = f.read()
        row = next(line for line in table.splitlines() if line.startswith("| vanilla"))
        return table, [cell.strip() for cell in row.strip("|").split("|")]

    def test_the_run_that_did_not_learn_is_named_and_left_out_of_the_means(self):
        table, row = self.run_seeds()
        self.assertEqual(row[1], "3 (1 did not learn)")
        # best dev 86 and 90: mean 88.0, sample standard deviation sqrt(8) = 2.83.
        self.assertEqual(row[2], "88.0 ± 2.8 (86.0–90.0)")
        self.assertEqual(row[3], "82.0 ± 2.8 (80.0–84.0)")
        # clean agreement 70 and 74 (the one-label run's 100 is not in it).
        self.assertEqual(row[7], "72.0 ± 2.8 (70.0–74.0)")
        # attacked: (60 * 0.70 + 4 * 0) / 64 = 65.6 and 60 * 0.74 / 64 = 69.4;
        # a mean of the languages would give 35.0 and 37.0.
        self.assertEqual(row[8], "67.5 ± 2.7 (65.6–69.4)")
        self.assertEqual(row[10], "0.9100 ± 0.0141 (0.9000–0.9200)")
        self.assertIn("best dev-en under 60.0", table)
        self.assertIn("- vanilla, " + self.folders[2] + ": best dev-en 50.5", table)

    def test_a_lower_threshold_keeps_every_run(self):
        table, row = self.run_seeds("--learned-above", "0.5")
        self.assertEqual(row[1], "3")
        # mean of 80, 84 and 51 = 71.67; deviation sqrt((8.33^2 + 12.33^2 + 20.67^2) / 2) = 18.0.
        self.assertEqual(row[3], "71.7 ± 18.0 (51.0–84.0)")
        self.assertNotIn("Left out", table)

    def test_the_scatter_stays_inside_its_axes(self):
        self.run_seeds()
        with open(os.path.join(self.out, "seeds.svg")) as f:
            svg = f.read()
        ticks = [int(t) for t in re.findall(r'text-anchor="end">(\d+)<', svg)]
        self.assertEqual(len(ticks), 5)
        self.assertLessEqual(max(ticks), 100, "agreement is a share of pairs: no tick above 100%")
        self.assertIn("hollow: did not learn", svg)
        self.assertEqual(svg.count('fill="none"'), 1, "one hollow marker: the run that did not learn")


class Lost(unittest.TestCase):
    """What the attack takes of agreement and alignment is shown only where
    the attacked figures rest on the same pairs as the clean ones."""

    def test_only_on_the_same_pairs(self):
        with tempfile.TemporaryDirectory() as root:
            same, older = os.path.join(root, "same"), os.path.join(root, "older")
            # de: 100 pairs, 90% agree clean, 70% attacked; zh: 50 pairs, 80% both.
            # Pooled: (90 + 40) / 150 - (70 + 40) / 150 = 13.3 points.
            write_run(same, "vanilla", [0.9], 0.8, None, None, consistency=[
                {"language": "de", "shared_pairs": 100, "perturbed_pairs": 100,
                 "agreement": 0.9, "attacked_agreement": 0.7,
                 "alignment": 0.9, "attacked_alignment": 0.85},
                {"language": "zh", "shared_pairs": 50, "perturbed_pairs": 50,
                 "agreement": 0.8, "attacked_agreement": 0.8,
                 "alignment": 0.9, "attacked_alignment": 0.9}])
            write_run(older, "vanilla", [0.9], 0.8, 0.7, 0.9)
            out = os.path.join(root, "out")
            os.makedirs(out)
            tables = {}
            for folder in (same, older):
                subprocess.run([sys.executable, SCRIPT, "--seeds", out, folder],
                               check=True, capture_output=True, text=True)
                with open(os.path.join(out, "seeds.md")) as f:
                    tables[folder] = f.read().splitlines()
            header = [c.strip() for c in tables[same][0].strip("|").split("|")]
            row = [c.strip() for c in tables[same][2].strip("|").split("|")]
            self.assertEqual(row[header.index("agreement lost to attack")], "13.3")
            # alignment: 0.9 - (85 + 45) / 150 = 0.0333.
            self.assertEqual(row[header.index("alignment lost to attack")], "0.0333")
            self.assertNotIn("lost to attack", tables[older][0],
                             "attacked on 60 of 100 pairs: not comparable with clean")


if __name__ == "__main__":
    unittest.main()
