"""The jitted core stays light: models/, rl/ and the train steps import no TensorFlow, SeqIO, Gin or orbax."""

import glob
import os
import subprocess
import sys

import pytest

from import_scan import PKG, scan

HEAVY = ("tensorflow", "seqio", "tensorflow_datasets", "tensorflow_text")
PURE_DIRS = ("models", "rl", "tabular")
PURE_FILES = ("training/sft.py", "training/state.py", "partitioning.py")


def _imports(path):
  return scan()[os.path.relpath(path, PKG)]["all"]


def _pure_files():
  files = [os.path.join(PKG, f) for f in PURE_FILES]
  for d in PURE_DIRS:
    files += glob.glob(os.path.join(PKG, d, "**", "*.py"), recursive=True)
  return sorted(f for f in files if os.path.exists(f))


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: os.path.relpath(p, PKG))
def test_pure_modules_import_nothing_heavy(path):
  banned = HEAVY + ("gin", "orbax")
  bad = [m for m in _imports(path) if m.split(".")[0] in banned]
  assert not bad, f"{os.path.relpath(path, PKG)} imports {bad}"


def test_no_module_imports_tensorflow_at_top_level():
  bad = {path: hits for path, found in scan().items()  # module level only: lazy imports inside functions are allowed
         if (hits := [n for n in found["top"] if n.split(".")[0] in HEAVY])}
  assert not bad


def test_importing_the_trainer_loads_no_tensorflow():
  code = ("import sys, mtpo_jax.main, mtpo_jax.models.decoding, mtpo_jax.training.sft_trainer; "
          "print([m for m in sys.modules if m.split('.')[0] in %r])" % (HEAVY,))
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "[]"
