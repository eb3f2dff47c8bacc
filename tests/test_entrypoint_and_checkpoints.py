"""The Gin entrypoint end to end: exact resume in a fresh process, clear errors for bad checkpoints and configs."""

import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from mtpo_jax import gin_registry, main
from mtpo_jax.checkpoints import CheckpointError, load_params

N = 4
BASE = ["--gin_file=experiments/sft_tiny.gin", "--gin_file=meshes/cpu.gin",
        "--gin.LoopSettings.batch_size=8", "--gin.toy_teacher_task.num_train=200",
        "--gin.toy_teacher_task.num_eval=16", "--gin.train_sft.eval_batches=1",
        f"--gin.LoopSettings.save_every={N}", "--gin.LoopSettings.log_every=1", "--gin.LoopSettings.eval_every=1000"]


def _args(model_dir, steps):
  return BASE + [f"--gin.MODEL_DIR='{model_dir}'", f"--gin.LoopSettings.num_steps={steps}"]


def _losses(model_dir):
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("straight"))
  main.run(_args(d, 2 * N))
  return d


def test_resume_in_fresh_process_is_exact(straight_run, tmp_path, repo_root):
  d = str(tmp_path / "resumed")
  main.run(_args(d, N))
  assert sorted(os.listdir(os.path.join(d, "checkpoints"))) == [str(N)]
  proc = subprocess.run([sys.executable, "-m", "mtpo_jax.main", *_args(d, 2 * N),
                         "--allow_config_change"], cwd=repo_root,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  straight, resumed = _losses(straight_run), _losses(d)
  for step in range(N + 1, 2 * N + 1):
    assert resumed[step] == straight[step], (step, resumed[step], straight[step])
  a, b = load_params(os.path.join(straight_run, "checkpoints")), load_params(os.path.join(d, "checkpoints"))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # The run directory documents itself.
  operative = open(os.path.join(d, "operative_config.gin")).read()
  assert "LoopSettings.num_steps = 8" in operative and "T5Config.d_model = 64" in operative


def test_corrupt_checkpoint_gives_clear_error(straight_run, tmp_path):
  d = str(tmp_path / "corrupt")
  shutil.copytree(straight_run, d)
  for f in glob.glob(os.path.join(d, "checkpoints", str(2 * N), "state", "**", "*"), recursive=True):
    if os.path.isfile(f) and "manifest" not in f and os.path.getsize(f) > 0:
      with open(f, "wb") as fh:
        fh.write(b"garbage")
  with pytest.raises(CheckpointError, match=f"{2 * N}"):
    main.run(_args(d, 3 * N) + ["--allow_config_change"])


def test_missing_checkpoint_dir_gives_clear_error(tmp_path):
  with pytest.raises(CheckpointError, match="does not exist"):
    load_params(str(tmp_path / "nowhere"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(CheckpointError, match="no checkpoint"):
    load_params(str(tmp_path / "empty"))


def test_checkpoint_from_other_model_is_refused(straight_run, tmp_path):
  d = str(tmp_path / "other")
  shutil.copytree(straight_run, d)
  with pytest.raises(CheckpointError, match="different run|does not match"):
    main.run(_args(d, 3 * N) + ["--gin.T5Config.d_ff=128", "--allow_config_change"])


def test_unknown_gin_name_fails_before_work(tmp_path):
  d = tmp_path / "typo"
  with pytest.raises(ValueError, match="train_sft.num_step"):
    main.run(_args(str(d), 2) + ["--gin.train_sft.num_step=3"])
  with pytest.raises(ValueError, match="T5Confg"):
    main.run(_args(str(d), 2) + ["--gin.T5Confg.d_model=3"])
  assert not d.exists()  # nothing was started


def test_missing_gin_file_and_flags():
  with pytest.raises(FileNotFoundError, match="nope.gin"):
    gin_registry.parse_config(["nope.gin"], [])
  with pytest.raises(SystemExit):
    main.parse_args(["--bogus=1", "--gin_file=x.gin"])
