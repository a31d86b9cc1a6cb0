"""Tests of benches/same_run.py on hand-made run folders:
python3 -m unittest benches/test_same_run.py"""
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import same_run  # noqa: E402

LOG = [
    {"model": "out/a/init", "train": "out/a/train-en.tsv", "dev": "out/a/dev-en.tsv",
     "settings": {"seed": 7, "method": {"method": "adv", "eps": 0.02}}},
    {"step": 1, "loss": 0.6917967498302460, "gradient_norm": 0.8182433434330577,
     "sequences_per_second": 0.36},
    {"step": 2, "loss": 0.7009, "gradient_norm": 0.52, "dev_accuracy": 0.505,
     "sequences_per_second": 0.35},
]
REPORT = {"header": {"command": "xltc eval out/a/best", "model": "out/a/best"},
          "evaluation": {"seconds": 200.0,
                         "consistency": [{"language": "de", "alignment": 0.95,
                                          "attacked_alignment": 0.94}],
                         "averages": {"mean": 0.824}}}
PAIRS = [["file", "id", "gold", "predicted", "alignment"],
         ["test-en.tsv", "0", "0", "0", ""],
         ["test-de.tsv", "0", "0", "1", "0.93"]]


def write_run(folder, log=LOG, report=REPORT, pairs=PAIRS):
    os.makedirs(os.path.join(folder, "eval"), exist_ok=True)
    with open(os.path.join(folder, "log.jsonl"), "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in log)
    if report is not None:
        with open(os.path.join(folder, "eval", "report.json"), "w") as f:
            json.dump(report, f)
    if pairs is not None:
        with open(os.path.join(folder, "eval", "pairs.tsv"), "w") as f:
            f.writelines("\t".join(row) + "\n" for row in pairs)


def changed(value, path, new):
    """A deep copy of JSON `value` with the item at `path` set to `new`."""
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


class SameRun(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.earlier = os.path.join(self.dir.name, "a")
        self.later = os.path.join(self.dir.name, "b")
        write_run(self.earlier)

    def tearDown(self):
        self.dir.cleanup()

    def check(self):
        out = io.StringIO()
        return same_run.same_run(self.earlier, self.later, out), out.getvalue()

    def test_identical_runs_are_the_same(self):
        write_run(self.later)
        same, text = self.check()
        self.assertTrue(same)
        self.assertEqual(text.splitlines(), ["log.jsonl: same", "eval/report.json: same",
                                             "eval/pairs.tsv: same"])

    def test_last_bit_of_a_loss_differs(self):
        loss = LOG[1]["loss"]
        nudged = loss + loss * 2.0 ** -52
        self.assertNotEqual(nudged, loss)
        write_run(self.later, log=changed(LOG, [1, "loss"], nudged))
        same, text = self.check()
        self.assertFalse(same)
        self.assertIn("log.jsonl: 1 differences", text)
        self.assertIn(f"line 2: loss: {loss!r} then {nudged!r}", text)

    def test_paths_speed_and_time_are_not_compared(self):
        log = changed(LOG, [0, "model"], "elsewhere/b/init")
        log = changed(log, [2, "sequences_per_second"], 9.0)
        report = changed(REPORT, ["evaluation", "seconds"], 1.0)
        report = changed(report, ["header", "command"], "xltc eval elsewhere")
        write_run(self.later, log=log, report=report)
        self.assertTrue(self.check()[0])

    def test_a_setting_that_differs_is_found(self):
        write_run(self.later, log=changed(LOG, [0, "settings", "method", "eps"], 0.1))
        same, text = self.check()
        self.assertFalse(same)
        self.assertIn("line 1: settings.method.eps: 0.02 then 0.1", text)

    def test_fields_and_columns_only_the_later_run_has_are_listed(self):
        report = changed(REPORT, ["evaluation", "consistency", 0, "worst_alignment"], 0.9)
        pairs = [row + [extra] for row, extra in zip(PAIRS, ["alignment_worst", "", "0.9"])]
        write_run(self.later, report=report, pairs=pairs)
        same, text = self.check()
        self.assertTrue(same)
        self.assertIn("one side: consistency.0.worst_alignment (later only)", text)
        self.assertIn("one side: column alignment_worst (later only)", text)

    def test_an_evaluation_that_differs_is_found(self):
        report = changed(REPORT, ["evaluation", "consistency", 0, "attacked_alignment"], 0.93)
        pairs = [row[:] for row in PAIRS]
        pairs[2][3] = "0"
        write_run(self.later, report=report, pairs=pairs)
        same, text = self.check()
        self.assertFalse(same)
        self.assertIn("consistency.0.attacked_alignment: 0.94 then 0.93", text)
        self.assertIn("row 2 (test-de.tsv 0) predicted: '1' then '0'", text)

    def test_a_shorter_log_differs(self):
        write_run(self.later, log=LOG[:2])
        same, text = self.check()
        self.assertFalse(same)
        self.assertIn("3 lines then 2", text)

    def test_a_missing_evaluation_is_said_not_compared(self):
        write_run(self.later, report=None, pairs=None)
        same, text = self.check()
        self.assertTrue(same)
        self.assertIn("eval/report.json: absent from the later run, not compared", text)

    def test_bad_json_names_the_run_file_and_line(self):
        write_run(self.later)
        with open(os.path.join(self.later, "log.jsonl"), "a") as f:
            f.write("{not json\n")
        with self.assertRaisesRegex(same_run.RunError, re.escape(self.later) + ": log.jsonl line 4"):
            self.check()

    def test_report_without_evaluation_names_the_run(self):
        write_run(self.later)
        with open(os.path.join(self.earlier, "eval", "report.json"), "w") as f:
            f.write("{}")
        with self.assertRaisesRegex(same_run.RunError, re.escape(self.earlier) + ": eval/report.json: no"):
            self.check()

    def test_earlier_run_from_git(self):
        repo = os.path.join(self.dir.name, "repo")
        write_run(os.path.join(repo, "runs", "adv"))
        git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(["git", "init", "-q", repo], check=True)
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "run"], check=True)
        write_run(self.later, log=changed(LOG, [2, "dev_accuracy"], 0.51))
        cwd = os.getcwd()
        os.chdir(repo)
        try:
            out = io.StringIO()
            self.assertFalse(same_run.same_run("HEAD:runs/adv", self.later, out))
            self.assertIn("line 3: dev_accuracy: 0.505 then 0.51", out.getvalue())
            with self.assertRaisesRegex(same_run.RunError, "git has no folder runs/rs-da"):
                same_run.same_run("HEAD:runs/rs-da", self.later, io.StringIO())
        finally:
            os.chdir(cwd)


if __name__ == "__main__":
    unittest.main()
