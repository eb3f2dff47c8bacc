"""SIGTERM at random points of a training run (training/loop.py): the trainer finishes its step, saves a checkpoint
at that step, logs one line and exits with PREEMPTED_EXIT_STATUS; rerunning the same command resumes, and the
result is bit-identical to a run that was never interrupted (every logged loss and every final parameter).

The default suite runs 2 trials; `pytest -m slow` runs 10 more. A trial waits for the first logged step, then a
random 0-1 s, so the signal lands at a different step (or during a checkpoint write) each time."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mtpo_jax import main
from mtpo_jax.checkpoints import load_params
from mtpo_jax.training.loop import PREEMPTED_EXIT_STATUS

STEPS = 150
BASE = ["--gin_file=experiments/sft_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.LoopSettings.batch_size=8",
        "--gin.toy_teacher_task.num_train=200", "--gin.toy_teacher_task.num_eval=16",
        "--gin.train_sft.eval_batches=1", "--gin.train_sft.num_samples=0", "--gin.LoopSettings.save_every=1000",
        "--gin.LoopSettings.log_every=1", "--gin.LoopSettings.eval_every=1000",
        f"--gin.LoopSettings.num_steps={STEPS}"]


def _args(model_dir):
  return BASE + [f"--gin.MODEL_DIR='{model_dir}'"]


def _losses(model_dir):
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  steps = [r["step"] for r in rows if "train/loss" in r]
  assert len(steps) == len(set(steps)), f"a step was logged twice: {steps}"
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def _command(model_dir, repo_root, log):
  return subprocess.Popen([sys.executable, "-m", "mtpo_jax.main", *_args(model_dir)], cwd=repo_root,
                          stdout=subprocess.DEVNULL, stderr=log)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("straight"))
  main.run(_args(d))
  return d


def _trial(seed, straight, tmp_path, repo_root):
  d = str(tmp_path / f"trial{seed}")
  os.makedirs(d)
  log_path = os.path.join(d, "stderr.log")
  with open(log_path, "w") as log:
    proc = _command(d, repo_root, log)
    metrics = os.path.join(d, "metrics.jsonl")
    deadline = time.time() + 300
    while not (os.path.exists(metrics) and os.path.getsize(metrics)) and proc.poll() is None:
      assert time.time() < deadline, "the run never logged a step"
      time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.0, 1.0))
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(timeout=300)
  text = open(log_path).read()
  if status == PREEMPTED_EXIT_STATUS:
    saved = re.search(r"stopped by SIGTERM: saved step (\d+) in (\S+);", text)
    assert saved, text[-2000:]
    assert "Traceback" not in text, text[-2000:]
    assert os.listdir(os.path.join(d, "checkpoints")) == [saved.group(1)]
  else:  # the run finished before the signal arrived
    assert status == 0, text[-2000:]
  with open(log_path, "a") as log:
    assert _command(d, repo_root, log).wait(timeout=600) == 0, open(log_path).read()[-2000:]
  assert _losses(d) == _losses(straight)  # every step once, bit-identical
  a, b = load_params(os.path.join(straight, "checkpoints")), load_params(os.path.join(d, "checkpoints"))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  return status


@pytest.mark.parametrize("seed", [0, 1])
def test_sigterm_saves_and_the_resumed_run_is_bit_identical(seed, straight, tmp_path, repo_root):
  assert _trial(seed, straight, tmp_path, repo_root) == PREEMPTED_EXIT_STATUS


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
def test_sigterm_trials(seed, straight, tmp_path, repo_root):
  _trial(seed, straight, tmp_path, repo_root)
