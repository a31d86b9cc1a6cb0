"""compare_methods.py --seeds on hand-made runs: each cell is the mean,
sample standard deviation and range of the runs that learned; agreement and
alignment are pooled over the pairs of all languages; a run whose
best dev-en stays under --learned-above is counted, named and left out of
the means; the scatter's axes stay inside [0, 1]; what the attack takes of
agreement and alignment is shown only where both rest on the same pairs;
where reports have pairs.tsv, methods are compared pair by pair (McNemar,
with Holm's adjustment over the table), and the alignment each attack takes
is described pair by pair (median, 90th percentile, largest, the tail);
over seeds too, alignment under its own worst draw and what that draw takes;
retrieval (clean and on the worst draw) pooled like agreement, where reports have it.

    python3 -m unittest benches/test_compare_methods.py
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import importlib.util

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_methods.py")
SPEC = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
compare_methods = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare_methods)


def read(path):
    with open(path) as f:
        return f.read()


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
        "consistency": consistency,
        "languages": [{"language": "en", "accuracy": mean}, {"language": "de", "accuracy": 0.5}],
        "matrix": {"languages": ["en", "de"], "accuracy": [[mean, 0.5], [0.5, 0.5]]}}}
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
        self.assertIn("- vanilla, " + os.path.join(self.folders[2], "vanilla") + ": best dev-en 50.5", table)

    def test_seeds_named_run_by_run(self):
        # Each seed given as NAME=RUN (the runs moved elsewhere) gives the
        # folders' table and plot.
        table, _ = self.run_seeds()
        svg = read(os.path.join(self.out, "seeds.svg"))
        moved = []
        for k, folder in enumerate(self.folders):
            run = os.path.join(self.tmp.name, f"moved-{k}")
            shutil.copytree(os.path.join(folder, "vanilla"), run)
            moved.append("vanilla=" + run)
        subprocess.run([sys.executable, SCRIPT, "--seeds", self.out, *moved],
                       check=True, capture_output=True, text=True)
        self.assertEqual(read(os.path.join(self.out, "seeds.svg")), svg)
        self.assertEqual(read(os.path.join(self.out, "seeds.md")),
                         table.replace(os.path.join(self.folders[2], "vanilla"), moved[2][len("vanilla="):]))

    def test_a_lower_threshold_keeps_every_run(self):
        table, row = self.run_seeds("--learned-above", "0.5")
        self.assertEqual(row[1], "3")
        # mean of 80, 84 and 51 = 71.67; deviation sqrt((8.33^2 + 12.33^2 + 20.67^2) / 2) = 18.0.
        self.assertEqual(row[3], "71.7 ± 18.0 (51.0–84.0)")
        self.assertNotIn("Left out", table)

    def test_only_the_methods_named_in_their_order(self):
        # adv beside vanilla in seeds 7 and 8, and a sweep run, older, with
        # no attacked figures (no dot for it in the scatter).
        for folder, d in zip(self.folders[:2], (0.8, 0.82)):
            write_run(folder, "adv", [d], 0.78, 0.72, 0.93)
        write_run(self.folders[0], "sweep-adv", [0.7], 0.6, None, None, consistency=[])
        names = lambda table: [l.split("|")[1].strip() for l in table.split("\n\n")[0].splitlines()[2:]]
        table, _ = self.run_seeds()
        self.assertEqual(names(table), ["vanilla", "adv", "sweep-adv"])
        svg = read(os.path.join(self.out, "seeds.svg"))
        self.assertEqual(svg.count("<circle"), 3 + 2 + 2, "vanilla's three runs, adv's two, a legend marker each")
        self.assertNotIn("sweep-adv", svg)
        table, row = self.run_seeds("--methods", "adv,vanilla")
        self.assertEqual(names(table), ["adv", "vanilla"])
        self.assertNotIn("sweep-adv", table)
        self.assertEqual(row[1], "3 (1 did not learn)")
        result = subprocess.run([sys.executable, SCRIPT, "--seeds", self.out, "--methods", "adv,rs-da",
                                 *self.folders], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("no run of rs-da in", result.stderr)

    def test_a_seed_from_a_folder_and_named_runs(self):
        # Seed 7's folder holds vanilla; its adv lies elsewhere.
        elsewhere = os.path.join(self.tmp.name, "elsewhere")
        write_run(elsewhere, "adv", [0.8], 0.78, 0.72, 0.93)
        seed = f"{self.folders[0]},adv-0.1={os.path.join(elsewhere, 'adv')}"
        result = subprocess.run([sys.executable, SCRIPT, "--seeds", self.out, seed, self.folders[1]],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = {l.split("|")[1].strip(): l.split("|")[2].strip()
                for l in result.stdout.split("\n\n")[0].splitlines()[2:]}
        self.assertEqual(rows, {"vanilla": "2", "adv-0.1": "1"})
        clash = f"{self.folders[0]},vanilla={os.path.join(elsewhere, 'adv')}"
        result = subprocess.run([sys.executable, SCRIPT, "--seeds", self.out, clash],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 2)
        self.assertIn("vanilla twice in the seed", result.stderr)

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
                 "alignment": 0.9, "attacked_alignment": 0.85, "worst_alignment": 0.8,
                 "retrieval": 0.95, "worst_retrieval": 0.8},
                {"language": "zh", "shared_pairs": 50, "perturbed_pairs": 50,
                 "agreement": 0.8, "attacked_agreement": 0.8,
                 "alignment": 0.9, "attacked_alignment": 0.9, "worst_alignment": 0.87,
                 "retrieval": 0.8, "worst_retrieval": 0.5}])
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
            # alignment's own worst draw: (80 + 43.5) / 150 = 0.8233, 0.9 - that = 0.0767.
            self.assertEqual(row[header.index("alignment, worst draw")], "0.8233")
            self.assertEqual(row[header.index("alignment lost to its worst draw")], "0.0767")
            # retrieval, pooled: (95 + 40) / 150 = 90.0%; worst draw (80 + 25) / 150 = 70.0%.
            self.assertEqual(row[header.index("retrieval")], "90.0")
            self.assertEqual(row[header.index("retrieval, worst draw")], "70.0")
            self.assertNotIn("worst draw", tables[older][0], "older reports have no worst draw")
            self.assertNotIn("retrieval", tables[older][0], "older reports have no retrieval")
            self.assertNotIn("lost to attack", tables[older][0],
                             "attacked on 60 of 100 pairs: not comparable with clean")
            # Both runs as two seeds: a metric only the newer report has is
            # that run's, with the count of runs behind it.
            subprocess.run([sys.executable, SCRIPT, "--seeds", out, same, older],
                           check=True, capture_output=True, text=True)
            with open(os.path.join(out, "seeds.md")) as f:
                both = f.read().splitlines()
            header = [c.strip() for c in both[0].strip("|").split("|")]
            row = [c.strip() for c in both[2].strip("|").split("|")]
            self.assertEqual(row[header.index("retrieval")], "90.0; 1 of 2 runs")
            self.assertEqual(row[header.index("alignment lost to attack")], "0.0333; 1 of 2 runs")
            # Agreement, which both have: (130 / 150 + 0.7) / 2 = 78.3 ± 11.8.
            self.assertEqual(row[header.index("agreement")], "78.3 ± 11.8 (70.0–86.7)")


def write_pairs(folder, method, attacked_agree, lost):
    """pairs.tsv with ten German pairs: the prediction is class 1, the
    English original's is 1 clean, and 1 under attack on the pairs in
    `attacked_agree` (0 elsewhere); alignment 0.9 clean, 0.9 - lost attacked
    and 0.9 - 2 lost under the draw of lowest alignment."""
    lines = ["file\tid\tgold\tpredicted\tsubstituted\tworst\tenglish\tenglish_attacked"
             "\talignment\talignment_attacked\talignment_worst"]
    for i in range(10):
        attacked = 1 if i in attacked_agree else 0
        lines.append(f"test-de.tsv\t{i}\t1\t1\t\t\t1\t{attacked}\t0.900000\t{0.9 - lost[i]:.6f}"
                     f"\t{0.9 - 2 * lost[i]:.6f}")
    lines.append("test-en-de.tsv\t0\t1\t0\t\t\t\t\t\t\t")
    with open(os.path.join(folder, method, "eval", "pairs.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")


class SeedsPaired(unittest.TestCase):
    """Over seeds, each method minus vanilla of the same seed, pair by pair."""

    def test_per_seed_differences_and_their_spread(self):
        with tempfile.TemporaryDirectory() as root:
            seed = {s: os.path.join(root, f"seed-{s}") for s in (7, 8, 9)}
            for s in seed.values():
                write_run(s, "vanilla", [0.9], 0.8, 0.7, 0.9)
            write_run(seed[7], "adv", [0.9], 0.8, 0.7, 0.9)
            write_run(seed[8], "adv", [0.9], 0.8, 0.7, 0.9)
            # Seed 9's adv sat on the majority class: its seed is left out.
            write_run(seed[9], "adv", [0.505], 0.5, 1.0, 0.99)
            # Seed 7: adv agrees under attack on 8 pairs, vanilla on 5 (+30
            # points, half-width 1.96 * sqrt((3 - 9 / 10) * 10 / 9) / 10 =
            # 29.9: above 0); the attack takes 0.01 of adv's alignment, 0.02 of vanilla's
            # (-0.01 on every pair: half-width 0).
            write_pairs(seed[7], "vanilla", set(range(5)), [0.02] * 10)
            write_pairs(seed[7], "adv", set(range(8)), [0.01] * 10)
            # Seed 8: the same agreement (0), 0.03 less alignment lost.
            write_pairs(seed[8], "vanilla", set(range(6)), [0.03] * 10)
            write_pairs(seed[8], "adv", set(range(6)), [0.0] * 10)
            write_pairs(seed[9], "vanilla", set(range(6)), [0.03] * 10)
            write_pairs(seed[9], "adv", set(range(10)), [0.0] * 10)
            out = os.path.join(root, "out")
            os.makedirs(out)
            subprocess.run([sys.executable, SCRIPT, "--seeds", out, *seed.values()],
                           check=True, capture_output=True, text=True)
            with open(os.path.join(out, "seeds.md")) as f:
                text = f.read()
            with open(os.path.join(out, "pooled.svg")) as f:
                plot = f.read()
            # One seed alone: its difference and where its interval lies.
            subprocess.run([sys.executable, SCRIPT, "--seeds", out, seed[8]],
                           check=True, capture_output=True, text=True)
            with open(os.path.join(out, "seeds.md")) as f:
                one = f.read().splitlines()[-1]
            self.assertFalse(os.path.exists(os.path.join(out, "pooled.svg")),
                             "nothing taken together: the earlier plot is gone")
        lines = text[text.index("Each method minus vanilla"):text.index("The same comparisons")]
        lines = lines.strip().splitlines()
        header = [c.strip() for c in lines[2].strip("|").split("|")]
        rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[4:]]
        self.assertEqual([r[0] for r in rows], ["adv"])
        # Seeds 7 and 8 taken together (9's adv did not learn): 20 pairs in
        # 10 clusters (an original's pair in both seeds), +1 on originals
        # 5, 6, 7 of seed 7: 3 / 20 = +15 points; half-width
        # 1.96 sqrt((3 0.7^2 + 7 0.3^2) 10 / 9) / 20 = 15.0; Durkalski's
        # p = erfc(sqrt(3^2 / 3 / 2)) = 0.083, Holm over 3 tests (en worst
        # of k has no pairs) 0.25.
        pooled = text[text.index("The same comparisons"):].strip().splitlines()
        pooled_header = [c.strip() for c in pooled[2].strip("|").split("|")]
        pooled_row = dict(zip(pooled_header, [c.strip() for c in pooled[4].strip("|").split("|")]))
        self.assertEqual(len(pooled), 5, "one method")
        self.assertEqual(pooled_row["agreement attacked (points (95% interval), p, Holm, pairs)"],
                         "+15.0 (+0.0 to +30.0), p 0.083, Holm 0.25, 20")
        self.assertNotIn("en worst of k", pooled[2], "no pair has it: no column")
        # The plot draws the pooled interval, +0.03 to +29.97 around +15.0,
        # on the points panel: its left end just right of the zero line
        # (0.03 of 33 points over 180 pixels), its dot half way to the right
        # end; nothing for en worst of k.
        zero = re.search(r'<line x1="([0-9.]+)" x2="\1" y1="[0-9]+" y2="[0-9]+" stroke="#888"/>', plot)
        self.assertIsNotNone(zero, plot)
        drawn = re.findall(r'<line x1="([0-9.]+)" x2="([0-9.]+)" y1="([0-9.]+)" y2="\3" '
                           r'stroke="[^"]+" stroke-width="2"/>\n<circle cx="([0-9.]+)"', plot)
        self.assertEqual(len(drawn), 3, "accuracy, agreement and agreement attacked")
        low, high, _, dot = drawn[2]
        self.assertGreater(float(low) - float(zero.group(1)), 0.0)
        self.assertLess(float(low) - float(zero.group(1)), 0.5)
        self.assertAlmostEqual(float(dot) - float(low), float(high) - float(dot), delta=0.15)
        self.assertGreater(float(high), float(low))
        self.assertIn(">adv</text>", plot)
        self.assertNotIn("en worst of k", plot)
        row = dict(zip(header, rows[0]))
        # +30 and 0: mean 15, sd sqrt(2 * 15^2) = 21.2.
        self.assertEqual(row["agreement attacked (points)"],
                         "+15.0 ± 21.2 (+0.0 to +30.0); 2 seeds, 0 below 0, 1 above")
        # -0.01 and -0.03: mean -0.02, sd 0.0141; both intervals below 0.
        self.assertEqual(row["alignment lost to attack (cosine)"],
                         "-0.0200 ± 0.0141 (-0.0300 to -0.0100); 2 seeds, 2 below 0, 0 above")
        self.assertEqual(row["alignment lost to its worst draw (cosine)"],
                         "-0.0400 ± 0.0283 (-0.0600 to -0.0200); 2 seeds, 2 below 0, 0 above")
        # Every original (a German pair each) loses less under adv on both
        # seeds: 10 against 0, sign test 2 / 2^10, more than half.
        self.assertEqual(row["originals losing less to its worst draw (share)"],
                         "100% (100 to 100); 2 seeds, 2 more, 0 fewer")
        self.assertEqual([c.strip() for c in one.strip("|").split("|")][1:3],
                         ["+0.0; 1 seed, interval across 0", "-0.0300; 1 seed, below 0"])
        self.assertEqual(one.strip("|").split("|")[-1].strip(), "100%; 1 seed, more than half")

    def test_no_section_without_pairs(self):
        with tempfile.TemporaryDirectory() as root:
            for s in ("seed-7", "seed-8"):
                for method in ("vanilla", "adv"):
                    write_run(os.path.join(root, s), method, [0.9], 0.8, 0.7, 0.9)
            result = subprocess.run([sys.executable, SCRIPT, "--seeds", root,
                                     os.path.join(root, "seed-7"), os.path.join(root, "seed-8")],
                                    check=True, capture_output=True, text=True)
            self.assertNotIn("Each method minus", result.stdout)
            # adv alone with pairs.tsv (vanilla's report is an older one):
            # still nothing to pair, and no failure.
            write_pairs(os.path.join(root, "seed-7"), "adv", set(range(8)), [0.01] * 10)
            result = subprocess.run([sys.executable, SCRIPT, "--seeds", root, os.path.join(root, "seed-7")],
                                    check=True, capture_output=True, text=True)
            self.assertNotIn("Each method minus", result.stdout)


class Paired(unittest.TestCase):
    """Methods compared with the first pair by pair, where the reports have
    pairs.tsv: McNemar on the discordant pairs, and the per-pair difference
    of alignment lost with its interval."""

    def test_discordant_pairs_and_alignment_lost(self):
        with tempfile.TemporaryDirectory() as root:
            for method in ("vanilla", "adv", "rs-rp"):
                write_run(root, method, [0.9], 0.8, 0.7, 0.9)
            # Under attack adv agrees on 0-7, vanilla on 0-3 and 8: adv alone
            # on 4 pairs, vanilla alone on 1. +30 points over 10; McNemar:
            # 2 * (C(5,0) + C(5,1)) / 2^5 = 0.375 (exact: one pair an
            # original); 95% half-width over the ten: differences +1 x4, -1,
            # 0 x5, mean 0.3, squares about it 4 * 0.49 + 1.69 + 5 * 0.09 =
            # 4.1, times 10 / 9: 1.96 * sqrt(4.556) / 10 = 41.8 points.
            write_pairs(root, "vanilla", {0, 1, 2, 3, 8}, [0.02] * 10)
            write_pairs(root, "adv", set(range(8)), [0.02] * 5 + [0.01] * 5)
            # rs-rp has no pairs.tsv (an older report): no row.
            result = subprocess.run([sys.executable, SCRIPT, root, "vanilla", "adv", "rs-rp"],
                                    check=True, capture_output=True, text=True)
            with open(os.path.join(root, "results.md")) as f:
                text = f.read()
            self.assertEqual(text, result.stdout)
            # The forest plot: a line an interval, adv's only (rs-rp has no
            # pairs.tsv): accuracy, agreement, agreement attacked and the two
            # alignment losses.
            with open(os.path.join(root, "paired.svg")) as f:
                svg = f.read()
            self.assertEqual(svg.count("<circle"), 5)
            lines = text[text.index("Paired against vanilla"):text.index("Original by original")].strip().splitlines()
            # Original by original (each German pair has its own): the class
            # attack takes 0.02 of vanilla's every pair, of adv's 0.02 on five
            # and 0.01 on five: adv loses less on five, the same on five; median of -0.01 x5 and 0 x5 is -0.005;
            # sign test 2 / 2^5 = 0.0625; Holm over the two tests 0.125.
            signs = text[text.index("Original by original"):text.index("How the alignment")].strip().splitlines()
            self.assertEqual([[c.strip() for c in l.strip("|").split("|")] for l in signs[4:]],
                             [["adv", "class attack", "10", "5", "0", "5", "-0.0050", "0.062", "0.12"],
                              ["adv", "its worst draw", "10", "5", "0", "5", "-0.0100", "0.062", "0.12"]])
            # The spread of alignment lost: both attacks of the two runs with pairs.tsv.
            spread = text[text.index("How the alignment"):].splitlines()[4:]
            self.assertEqual([l.split(" | ")[:2] for l in spread],
                             [["| vanilla", "class attack"], ["| vanilla", "its worst draw"],
                              ["| adv", "class attack"], ["| adv", "its worst draw"]])
            header = [c.strip() for c in lines[2].strip("|").split("|")]
            rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[4:]]
            self.assertEqual([r[0] for r in rows], ["adv"])
            row = dict(zip(header, rows[0]))
            self.assertEqual(row["agreement attacked (points (95% interval), p, Holm, pairs)"], "+30.0 (-11.8 to +71.8), p 0.38, Holm 1, 10")
            self.assertEqual(row["agreement (points (95% interval), p, Holm, pairs)"], "+0.0 (+0.0 to +0.0), p 1, Holm 1, 10")
            # Measured on no pair (no English test): the column is left out.
            self.assertNotIn("en worst of k (points (95% interval), p, Holm, pairs)", row)
            # Accuracy: German pairs only (the matrix file is not a language's own test).
            self.assertEqual(row["accuracy, every language's own test (points (95% interval), p, Holm, pairs)"], "+0.0 (+0.0 to +0.0), p 1, Holm 1, 10")
            # Alignment lost: 0 on five pairs, -0.01 on five: mean -0.005,
            # sample sd 0.00527, half-width 1.96 * 0.00527 / sqrt(10) = 0.0033.
            self.assertEqual(row["alignment lost to attack (difference (95% interval), pairs)"],
                             "-0.0050 (-0.0083 to -0.0017), 10")
            # Under the draw of lowest alignment every loss is twice that.
            self.assertEqual(row["alignment lost to its worst draw (difference (95% interval), pairs)"],
                             "-0.0100 (-0.0165 to -0.0035), 10")

    def test_clusters_by_hand(self):
        # Four English originals: A's two pairs both +1, B's +1 and 0, C's
        # -1 and 0, D's 0 and 0. Mean 2 / 8; cluster sums minus size x mean:
        # 1.5, 0.5, -1.5, -0.5, squares 5, times 4 / 3: half-width
        # 1.96 * sqrt(20 / 3) / 8 = 0.632587.
        outcomes = [("A", 1), ("A", 1), ("B", 1), ("B", 0), ("C", -1), ("C", 0), ("D", 0), ("D", 0)]
        centre, half, n = compare_methods.clustered(outcomes)
        self.assertEqual((centre, n), (0.25, 8))
        self.assertAlmostEqual(half, 0.632587, places=6)
        # Durkalski: (2 + 1 - 1)^2 / (4 + 1 + 1) = 2 / 3, chi-square with 1
        # degree of freedom: p = P(|Z| > sqrt(2 / 3) = 0.8165) = 2 x 0.20711.
        self.assertAlmostEqual(compare_methods.clustered_mcnemar(outcomes), 0.414216, places=6)
        # One value a cluster: the sample variance over n, and the exact test.
        values = [(i, v) for i, v in enumerate([0.1, -0.2, 0.4, 0.0, 0.3])]
        deviation = compare_methods.mean_deviation([v for _, v in values])[1]
        self.assertAlmostEqual(compare_methods.clustered(values)[1], 1.96 * deviation / 5 ** 0.5)
        singles = [(i, 1) for i in range(5)] + [(9, -1)]
        self.assertEqual(compare_methods.clustered_mcnemar(singles), compare_methods.mcnemar(5, 1))

    def test_holm_by_hand(self):
        # Sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1: 0.04, 0.09, 0.08
        # (raised to the 0.09 before it), 0.5; in the given order.
        adjusted = compare_methods.holm([0.01, 0.04, 0.03, 0.5])
        for got, want in zip(adjusted, [0.04, 0.09, 0.09, 0.5]):
            self.assertAlmostEqual(got, want)
        # Never above 1, and one test is left as it is.
        self.assertEqual(compare_methods.holm([0.4, 0.6]), [0.8, 0.8])
        self.assertEqual(compare_methods.holm([0.3]), [0.3])

    def test_spread_of_alignment_lost(self):
        # Twelve German pairs; the class attack takes `lost`, the worst draw
        # twice that. One pair the attack brings closer (-0.01).
        lost = [-0.01, 0.0, 0.01, 0.01, 0.02, 0.02, 0.02, 0.03, 0.03, 0.04, 0.045, 0.08]
        with tempfile.TemporaryDirectory() as root:
            write_run(root, "vanilla", [0.9], 0.8, 0.7, 0.9)
            lines = ["file\tid\tgold\tpredicted\tsubstituted\tworst\tenglish\tenglish_attacked"
                     "\talignment\talignment_attacked\talignment_worst"]
            lines += [f"test-de.tsv\t{i}\t1\t1\t\t\t1\t1\t0.900000\t{0.9 - v:.6f}\t{0.9 - 2 * v:.6f}"
                      for i, v in enumerate(lost)]
            # Not a translation: left out.
            lines.append("test-en.tsv\t0\t1\t1\t1,1,1\t1\t\t\t\t\t")
            with open(os.path.join(root, "vanilla", "eval", "pairs.tsv"), "w") as f:
                f.write("\n".join(lines) + "\n")
            text = compare_methods.spread_table(
                ["vanilla"], {"vanilla": compare_methods.pair_rows(os.path.join(root, "vanilla"))})
        rows = [[c.strip() for c in l.strip("|").split("|")] for l in text.splitlines()[4:]]
        # Class attack: mean 0.295 / 12; median (0.02 + 0.02) / 2; nearest
        # rank of the 90th percentile ceil(10.8) = 11th, 0.045; none over
        # 0.1; without the ten largest, (-0.01 + 0) / 2.
        self.assertEqual(rows[0], ["vanilla", "class attack", "12", "0.0246", "0.0200", "0.0450",
                                   "0.0800", "0", "-0.0050"])
        # Worst draw: every figure twice that, and 0.16 is over 0.1.
        self.assertEqual(rows[1], ["vanilla", "its worst draw", "12", "0.0492", "0.0400", "0.0900",
                                   "0.1600", "1", "-0.0100"])
        # No pairs.tsv: no table.
        with tempfile.TemporaryDirectory() as root:
            write_run(root, "vanilla", [0.9], 0.8, 0.7, 0.9)
            self.assertIsNone(compare_methods.spread_table(
                ["vanilla"], {"vanilla": compare_methods.pair_rows(os.path.join(root, "vanilla"))}))

    def test_a_run_from_another_folder_by_name(self):
        # adv's run kept elsewhere and named adv=RUN gives the table and
        # plots that adv inside OUT gives.
        with tempfile.TemporaryDirectory() as root:
            one, other = os.path.join(root, "one"), os.path.join(root, "other")
            for folder in (one, other):
                write_run(folder, "vanilla", [0.9], 0.8, 0.7, 0.9)
                write_pairs(folder, "vanilla", {0, 1, 2, 3, 8}, [0.02] * 10)
            write_run(one, "adv", [0.8], 0.75, 0.72, 0.88)
            write_pairs(one, "adv", set(range(8)), [0.02] * 5 + [0.01] * 5)
            shutil.copytree(os.path.join(one, "adv"), os.path.join(root, "elsewhere"))
            outputs = []
            for folder, adv in ((one, "adv"), (other, "adv=" + os.path.join(root, "elsewhere"))):
                subprocess.run([sys.executable, SCRIPT, folder, "vanilla", adv],
                               check=True, capture_output=True, text=True)
                outputs.append([read(os.path.join(folder, name))
                                for name in ("results.md", "paired.svg", "accuracy.svg")])
            self.assertIn("| adv |", outputs[1][0])
            self.assertEqual(outputs[0], outputs[1])

    def test_no_section_without_pairs(self):
        with tempfile.TemporaryDirectory() as root:
            for method in ("vanilla", "adv"):
                write_run(root, method, [0.9], 0.8, 0.7, 0.9)
            result = subprocess.run([sys.executable, SCRIPT, root, "vanilla", "adv"],
                                    check=True, capture_output=True, text=True)
            self.assertNotIn("Paired", result.stdout)


class CommandLine(unittest.TestCase):
    """Bad command lines and missing runs stop with a message that names
    what is wrong, a non-zero exit and nothing written."""

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)

    def test_help_and_bad_command_lines(self):
        result = self.run_script("--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("--seeds OUT", result.stdout)
        for args in [(), ("--bogus",), ("--seeds",), ("--seeds", "out"),
                     ("--seeds", "out", "--learned-above", "x", "folder"), ("--seeds", ".", "vanilla="),
                     ("--seeds", ".", "--methods", ",", "folder"), ("--seeds", ".", "--methods", "a,a", "folder"),
                     ("--seeds", ".", "--methods")]:
            result = self.run_script(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn("usage:", result.stderr)

    def test_missing_and_broken_runs_are_named(self):
        with tempfile.TemporaryDirectory() as root:
            write_run(root, "vanilla", [0.9], 0.8, 0.7, 0.9)
            missing = os.path.join(root, "nowhere")
            result = self.run_script(missing)
            self.assertEqual(result.returncode, 1)
            self.assertIn(f"{missing}: no such folder", result.stderr)
            result = self.run_script(root, "vanilla", "adv")
            self.assertEqual(result.returncode, 1)
            self.assertIn(os.path.join(root, "adv", "eval", "report.json"), result.stderr)
            with open(os.path.join(root, "vanilla", "eval", "report.json"), "w") as f:
                f.write("{not json")
            result = self.run_script(root, "vanilla")
            self.assertEqual(result.returncode, 1)
            self.assertIn(os.path.join(root, "vanilla", "eval", "report.json"), result.stderr)
            empty = os.path.join(root, "empty")
            os.makedirs(empty)
            result = self.run_script("--seeds", root, empty)
            self.assertEqual(result.returncode, 1)
            self.assertIn(f"no METHOD/eval/report.json in {empty}", result.stderr)
            self.assertFalse({"results.md", "seeds.md"} & set(os.listdir(root)))


if __name__ == "__main__":
    unittest.main()
