"""fetch.py on a Python without numpy: the converter's numpy is installed into
the cache and imported in the same process (the README's first command once
failed there with ModuleNotFoundError and worked only when run twice).

    python3 -m unittest models/test_fetch.py
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class FetchWithoutNumpy(unittest.TestCase):
    def test_numpy_is_importable_right_after_installing_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            venv = os.path.join(tmp, "venv")
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            python = os.path.join(venv, "bin", "python")
            probe = subprocess.run([python, "-c", "import numpy"], capture_output=True)
            self.assertNotEqual(probe.returncode, 0, "a fresh venv should have no numpy")
            script = (
                "import sys; sys.path.insert(0, sys.argv[1]); import fetch; "
                "fetch.ensure_numpy(); import numpy; print(numpy.__file__)"
            )
            env = dict(os.environ, XLTC_MODEL_CACHE=os.path.join(tmp, "cache"))
            run = subprocess.run([python, "-c", script, HERE], env=env,
                                 capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertTrue(run.stdout.startswith(os.path.join(tmp, "cache", "python")),
                            run.stdout)


if __name__ == "__main__":
    unittest.main()
