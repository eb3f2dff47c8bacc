"""A pipeline stopped mid-stage, by SIGTERM (forwarded to the stage) or kill -9 (the stage notices its pipeline is
gone, launch.watch_parent), then rerun with the same command, ends exactly where an uninterrupted pipeline ends:
the interrupted stage resumes from the checkpoint it saved on the way out, logs every step once with the
uninterrupted run's values, and ends with the same parameters; no stage process outlives the stop. Slow (about
5 CPU minutes): `pytest -m slow tests/pipeline/test_pipeline_kill.py`."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mtpo_jax.checkpoints import load_params
from mtpo_jax.pipeline import lock
from tests.pipeline.test_pipeline_end_to_end import MICRO

pytestmark = pytest.mark.slow

STAGE = "education/sft"
SFT = ["LoopSettings.num_steps = 40", "LoopSettings.batch_size = 4", "train_sft.task_feature_lengths = {'inputs': 64, 'targets': 16}",
       "LoopSettings.eval_every = 1000", "LoopSettings.save_every = 10",
       "LoopSettings.log_every = 1", "train_sft.num_samples = 0"]
BINDINGS = [*MICRO, "PipelinePlan.overrides = " + json.dumps({"sft": SFT}), f"run_pipeline.only = ['{STAGE}']"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _command(model_dir):
  return [sys.executable, "-m", "mtpo_jax.main", "--gin_file=experiments/pipeline_tiny.gin",
          f"--gin.MODEL_DIR='{model_dir}'", *[f"--gin_bindings={b}" for b in BINDINGS]]


def _env():
  return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # stages use meshes/cpu.gin's one device


def _steps(stage_dir):
  with open(os.path.join(stage_dir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("uninterrupted"))
  done = subprocess.run(_command(d), capture_output=True, text=True, env=_env(), timeout=1800, cwd=REPO)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  return d


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_a_stopped_pipeline_reruns_to_the_uninterrupted_result(sig, uninterrupted, tmp_path):
  d = str(tmp_path / "run")
  stage_dir = os.path.join(d, STAGE)
  log = open(tmp_path / "pipeline.log", "w")
  runner = subprocess.Popen(_command(d), stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
  deadline = time.time() + 900
  metrics = os.path.join(stage_dir, "metrics.jsonl")
  while not (os.path.exists(metrics) and len(open(metrics).readlines()) >= 12):  # past the first save (10)
    assert runner.poll() is None and time.time() < deadline, open(tmp_path / "pipeline.log").read()[-3000:]
    time.sleep(0.05)
  runner.send_signal(sig)
  status = runner.wait(timeout=600)
  assert status == (75 if sig == signal.SIGTERM else -signal.SIGKILL)
  deadline = time.time() + 120
  while lock.live_holder(stage_dir) is not None:  # kill -9: the orphaned stage stops on its own
    assert time.time() < deadline, "the stage outlived its pipeline"
    time.sleep(0.1)
  stage_log = open(os.path.join(stage_dir, "stage.log")).read()
  assert "stopped by SIGTERM: saved step" in stage_log, stage_log[-3000:]
  assert not os.path.exists(os.path.join(stage_dir, "STAGE_DONE.json"))

  rerun = subprocess.run(_command(d), capture_output=True, text=True, env=_env(), timeout=1800, cwd=REPO)
  assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
  assert "taking over the stale lock" in rerun.stdout or sig == signal.SIGTERM
  want, have = _steps(os.path.join(uninterrupted, STAGE)), _steps(stage_dir)
  assert have == want  # every step once, with the uninterrupted run's loss
  jax.tree.map(np.testing.assert_array_equal, load_params(os.path.join(uninterrupted, STAGE, "checkpoints")),
               load_params(os.path.join(stage_dir, "checkpoints")))
  assert open(os.path.join(stage_dir, "stage.log")).read().count("resumed from") == 1
