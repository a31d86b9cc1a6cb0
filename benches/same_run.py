#!/usr/bin/env python3
"""Says whether a training run and its evaluation came out the same as an
earlier one: the check behind every "reproduces exactly" in
benches/RESULTS.md. xltc's CPU path is bit-identical from run to run, so a
rerun with the same commands must give the same log.jsonl at every step and
the same evaluation; a difference means the code, the data or a setting
changed.

    python3 benches/same_run.py EARLIER LATER

EARLIER and LATER are run folders (METHOD/ of benches/robust_experiment.sh:
log.jsonl, eval/report.json, eval/pairs.tsv). EARLIER may also be REV:FOLDER,
the folder as git holds it at revision REV (HEAD:benches/results/...), so a
rerun written over a committed run can be checked against it.

Compared exactly (floats bit for bit), file by file:
- log.jsonl: the same number of lines and, on each, every field but the
  paths of the run's own files (model, train, dev) and its speed
  (sequences_per_second);
- eval/report.json: every field both reports have but the time taken
  (seconds) and the header (the command and paths);
- eval/pairs.tsv: every column both files have, row by row.
A field or column only one side has is listed, not counted as a difference
(later evaluations report more). A file only one side has is listed too.
Exit status: 0 when nothing compared differs, 1 otherwise, 2 on bad input.
Standard library only.
"""
import csv
import io
import json
import os
import signal
import subprocess
import sys

# Fields that name the run's own files or say how fast it went: they differ
# between two folders or two machines without the run being different.
LOG_IGNORED = {"model", "train", "dev", "sequences_per_second"}
REPORT_IGNORED = {"seconds"}
# How many differences a file prints before it only counts them.
SHOWN = 10


class RunError(Exception):
    pass


def reader(place):
    """A function from a file's path inside the run folder to its text (None
    when the file is absent), for a folder or a REV:FOLDER in git."""
    if os.path.isdir(place):
        def read(name):
            path = os.path.join(place, name)
            if not os.path.exists(path):
                return None
            with open(path, encoding="utf-8") as f:
                return f.read()
        return read
    if ":" not in place:
        raise RunError(f"{place}: not a folder, nor REV:FOLDER")
    rev, folder = place.split(":", 1)
    listed = subprocess.run(["git", "ls-tree", "-d", rev, folder.rstrip("/")],
                            capture_output=True, text=True)
    if listed.returncode != 0 or not listed.stdout.strip():
        raise RunError(f"{place}: git has no folder {folder} at {rev}")

    def read(name):
        shown = subprocess.run(["git", "show", f"{rev}:{folder.rstrip('/')}/{name}"],
                               capture_output=True)
        return shown.stdout.decode("utf-8") if shown.returncode == 0 else None
    return read


def flatten(value, prefix=""):
    """A JSON value as {dotted.path: leaf}, list items by index."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat


def compare_fields(earlier, later, ignored, where):
    """(differences, fields only one side has) between two flat dicts; a
    field is ignored when any part of its path is in `ignored`."""
    def kept(key):
        return not ignored.intersection(key.split("."))
    differences = [f"{where}{k}: {earlier[k]!r} then {later[k]!r}"
                   for k in sorted(earlier.keys() & later.keys())
                   if kept(k) and earlier[k] != later[k]]
    one_side = [f"{where}{k} ({'earlier' if k in earlier else 'later'} only)"
                for k in sorted(earlier.keys() ^ later.keys()) if kept(k)]
    return differences, one_side


def parse_json(text, name):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RunError(f"{name}: not JSON ({e})") from e


def compare_log(earlier, later, places):
    lines = [[parse_json(line, f"{place}: log.jsonl line {i + 1}")
              for i, line in enumerate(text.splitlines()) if line.strip()]
             for text, place in zip((earlier, later), places)]
    differences, one_side = [], []
    if len(lines[0]) != len(lines[1]):
        differences.append(f"{len(lines[0])} lines then {len(lines[1])}")
    for i, (a, b) in enumerate(zip(*lines)):
        d, o = compare_fields(flatten(a), flatten(b), LOG_IGNORED, f"line {i + 1}: ")
        differences += d
        one_side += o
    return differences, one_side


def compare_report(earlier, later, places):
    reports = [parse_json(text, f"{place}: eval/report.json") for text, place in zip((earlier, later), places)]
    for report, place in zip(reports, places):
        if not isinstance(report, dict) or "evaluation" not in report:
            raise RunError(f"{place}: eval/report.json: no \"evaluation\" in it")
    return compare_fields(flatten(reports[0]["evaluation"]),
                          flatten(reports[1]["evaluation"]), REPORT_IGNORED, "")


def compare_pairs(earlier, later, _places):
    readers = [csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
               for text in (earlier, later)]
    tables = [list(r) for r in readers]
    columns = [r.fieldnames or [] for r in readers]
    shared = [c for c in columns[0] if c in columns[1]]
    one_side = [f"column {c} ({'earlier' if c in columns[0] else 'later'} only)"
                for c in columns[0] + columns[1] if c not in shared]
    differences = []
    if len(tables[0]) != len(tables[1]):
        differences.append(f"{len(tables[0])} rows then {len(tables[1])}")
    for i, (a, b) in enumerate(zip(*tables)):
        differences += [f"row {i + 1} ({a.get('file')} {a.get('id')}) {c}: "
                        f"{a[c]!r} then {b[c]!r}" for c in shared if a[c] != b[c]]
    return differences, one_side


FILES = [("log.jsonl", compare_log), ("eval/report.json", compare_report),
         ("eval/pairs.tsv", compare_pairs)]


def same_run(earlier_place, later_place, out=sys.stdout):
    """Prints each file's comparison; True when nothing compared differs."""
    earlier, later = reader(earlier_place), reader(later_place)
    same = True
    for name, compare in FILES:
        texts = earlier(name), later(name)
        if texts[0] is None and texts[1] is None:
            continue
        if None in texts:
            side = "earlier" if texts[0] is None else "later"
            print(f"{name}: absent from the {side} run, not compared", file=out)
            continue
        # A RunError from a file's comparison names the run and file already.
        differences, one_side = compare(*texts, (earlier_place, later_place))
        same &= not differences
        verdict = "same" if not differences else f"{len(differences)} differences"
        print(f"{name}: {verdict}" + (f"; {len(one_side)} fields only one side has"
                                      if one_side else ""), file=out)
        for line in differences[:SHOWN]:
            print(f"  differs: {line}", file=out)
        for line in one_side[:SHOWN]:
            print(f"  one side: {line}", file=out)
        for rest, what in [(len(differences) - SHOWN, "differences"),
                           (len(one_side) - SHOWN, "one-side fields")]:
            if rest > 0:
                print(f"  ... and {rest} more {what}", file=out)
    return same


def main():
    # Piped into head, stop quietly when the reader does.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    try:
        same = same_run(sys.argv[1], sys.argv[2])
    except RunError as e:
        print(f"same_run: {e}", file=sys.stderr)
        sys.exit(2)
    print("the same run" if same else "not the same run")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
