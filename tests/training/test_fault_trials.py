"""Faults injected into every trainer (SFT, the scorers, RL, Iterative PPO); the rerun must equal a run that was
never interrupted: every logged train metric (timings aside) and the whole final checkpoint (parameters and
optimizer state), bit for bit.

  preemption, deterministic   in-process: the loop's stop check answers "stop" at one chosen step, so the
                              trainer saves that step and raises Preempted; the same command resumes (default).
  SIGTERM, random             a real process, signalled a random 0-T s after its first logged step (`-m slow`;
                              SFT's 2 + 10 trials live in test_preemption.py).
  kill -9, random             a real process killed at a random point, possibly mid-step or mid-save: the rerun
                              resumes from the last periodic checkpoint (Iterative PPO: redoes the phase it was
                              in); steps logged after that checkpoint are logged again, with the same values
                              (default: SFT, 1 trial; `-m slow`: every trainer).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mtpo_jax import main
from mtpo_jax.checkpoints import Checkpointer
from mtpo_jax.models.t5 import T5
from mtpo_jax.testing import tiny_config
from mtpo_jax.training import loop as loop_module
from mtpo_jax.training.loop import PREEMPTED_EXIT_STATUS, Preempted

TIMING = ("time",)
TIMING_SUFFIXES = ("_s", "_per_s", "tok_s")


@dataclasses.dataclass(frozen=True)
class Trainer:
  name: str
  args: tuple[str, ...]
  window_s: float  # the random delay after the first logged step is uniform in [0, window_s]


TRAINERS = {
    "sft": Trainer("sft", (
        "--gin_file=experiments/sft_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.LoopSettings.batch_size=8",
        "--gin.toy_teacher_task.num_train=200", "--gin.toy_teacher_task.num_eval=16",
        "--gin.train_sft.eval_batches=1", "--gin.train_sft.num_samples=0", "--gin.LoopSettings.save_every=30",
        "--gin.LoopSettings.log_every=1", "--gin.LoopSettings.eval_every=1000", "--gin.LoopSettings.num_steps=100"),
        0.7),
    "scorer": Trainer("scorer", (
        "--gin_file=experiments/reward_model_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.T5Config.d_model=32",
        "--gin.T5Config.d_ff=64", "--gin.T5Config.num_encoder_layers=1", "--gin.T5Config.num_decoder_layers=1",
        "--gin.LoopSettings.batch_size=8", "--gin.train_scorer.task_feature_lengths={'inputs': 96}", "--gin.PairData.num_train=64",
        "--gin.PairData.num_eval=8", "--gin.LoopSettings.save_every=15", "--gin.LoopSettings.log_every=1",
        "--gin.LoopSettings.eval_every=1000", "--gin.LoopSettings.num_steps=60"), 1.0),
    "rl": Trainer("rl", (
        "--gin_file=experiments/mtpo_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.LoopSettings.batch_size=2",
        "--gin.ConversationSettings.max_agent_turns=2", "--gin.ConversationSettings.input_length=64",
        "--gin.ConversationSettings.max_turn_tokens=8", "--gin.LoopSettings.eval_every=100",
        "--gin.train_rl.eval_contexts=2", "--gin.LoopSettings.save_every=2",
        "--gin.ActorCriticHParams.policy_delay=0", "--gin.policy/make_optimizer.learning_rate=1e-3",
        "--gin.LoopSettings.num_steps=4"), 3.0),
    "iterative_ppo": Trainer("iterative_ppo", (
        "--gin_file=experiments/iterative_ppo_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.T5Config.d_model=32",
        "--gin.T5Config.d_kv=8", "--gin.T5Config.d_ff=64", "--gin.ConversationSettings.input_length=64",
        "--gin.ConversationSettings.max_turn_tokens=8", "--gin.ConversationSettings.max_agent_turns=2",
        "--gin.QSettings.steps=4", "--gin.PPOHParams.steps=2", "--gin.q/make_optimizer.name='adamw'",
        "--gin.q/make_optimizer.learning_rate=3e-3", "--gin.LoopSettings.num_steps=3"), 6.0),
}


@pytest.fixture(scope="module")
def sft_checkpoint(tmp_path_factory) -> str:
  """A random tiny policy in an SFT checkpoint layout: Iterative PPO's pi_0 (its config is the SMALL shapes)."""
  d = str(tmp_path_factory.mktemp("sft") / "checkpoints")
  config = tiny_config(3072)
  x = jnp.ones((1, 4), jnp.int32)
  ckpt = Checkpointer(d, save_every=1, keep=1)
  ckpt.save(1, {"params": nn.unbox(T5(config).init(jax.random.PRNGKey(0), x, x)["params"])}, {}, force=True)
  ckpt.close()
  return d


def _argv(trainer: Trainer, model_dir: str, sft: str) -> list[str]:
  extra = [f"--gin.SFT_CHECKPOINT='{sft}'"] if trainer.name == "iterative_ppo" else []
  return [*trainer.args, *extra, f"--gin.MODEL_DIR='{model_dir}'"]


_STRAIGHT: dict[str, str] = {}


@pytest.fixture(scope="module")
def straight(tmp_path_factory, sft_checkpoint):
  """The uninterrupted run of a trainer, made once per module on first use."""
  def get(name: str) -> str:
    if name not in _STRAIGHT:
      d = str(tmp_path_factory.mktemp(f"straight_{name}"))
      main.run(_argv(TRAINERS[name], d, sft_checkpoint))
      _STRAIGHT[name] = d
    return _STRAIGHT[name]
  yield get
  _STRAIGHT.clear()


def _train_rows(model_dir: str) -> dict[int, list[dict]]:
  by_step: dict[int, list[dict]] = {}
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      values = {k: v for k, v in row.items()
                if k.startswith("train/") and not k.endswith(TIMING_SUFFIXES) and k not in TIMING}
      if values:
        by_step.setdefault(row["step"], []).append(values)
  return by_step


def _state(model_dir: str):
  manager = ocp.CheckpointManager(os.path.join(model_dir, "checkpoints"))
  step = manager.latest_step()
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
  manager.close()
  return step, state


def _assert_same_as_straight(straight_dir: str, model_dir: str, repeats_allowed: bool) -> None:
  want, have = _train_rows(straight_dir), _train_rows(model_dir)
  assert sorted(have) == sorted(want), (sorted(want), sorted(have))
  for step, rows in have.items():
    assert repeats_allowed or len(rows) == 1, f"step {step} was logged {len(rows)} times"
    for row in rows:  # a step logged again after a kill -9 carries the same values
      assert row == want[step][0], (step, row, want[step][0])
  (step_a, a), (step_b, b) = _state(straight_dir), _state(model_dir)
  assert step_a == step_b
  jax.tree.map(np.testing.assert_array_equal, a, b)


# DETERMINISTIC PREEMPTION, IN-PROCESS (default suite)

@pytest.mark.parametrize("name, stop_at", [("scorer", 7), ("rl", 3), ("iterative_ppo", 2)])
def test_preemption_saves_and_the_same_command_resumes_exactly(name, stop_at, straight, sft_checkpoint, tmp_path,
                                                              monkeypatch):
  want = straight(name)
  d = str(tmp_path / name)
  calls = {"n": 0}
  real = loop_module.TrainLoop.stop_requested

  def stop_at_call(self):
    calls["n"] += 1
    return real(self) or calls["n"] == stop_at
  monkeypatch.setattr(loop_module.TrainLoop, "stop_requested", stop_at_call)
  with pytest.raises(Preempted) as stopped:
    main.run(_argv(TRAINERS[name], d, sft_checkpoint))
  monkeypatch.setattr(loop_module.TrainLoop, "stop_requested", real)
  if name != "iterative_ppo":  # SFT, scorers, RL save the step they stop at
    assert stopped.value.step == stop_at
    assert str(stop_at) in os.listdir(os.path.join(d, "checkpoints"))
  main.run(_argv(TRAINERS[name], d, sft_checkpoint))
  _assert_same_as_straight(want, d, repeats_allowed=False)


# RANDOM SIGNALS TO A REAL PROCESS

def _signal_trial(name: str, sig: int, seed: int, straight_dir: str, sft: str, model_dir: str, repo_root: str) -> int:
  trainer = TRAINERS[name]
  os.makedirs(model_dir)
  log_path = model_dir + ".stderr.log"
  command = [sys.executable, "-m", "mtpo_jax.main", *_argv(trainer, model_dir, sft)]
  with open(log_path, "w") as log:
    proc = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.DEVNULL, stderr=log)
    metrics = os.path.join(model_dir, "metrics.jsonl")
    deadline = time.time() + 600
    while not (os.path.exists(metrics) and os.path.getsize(metrics)) and proc.poll() is None:
      assert time.time() < deadline, "the run never logged a step"
      time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.0, trainer.window_s))
    proc.send_signal(sig)
    status = proc.wait(timeout=600)
  text = open(log_path).read()
  if sig == signal.SIGTERM:
    assert status in (PREEMPTED_EXIT_STATUS, 0, -signal.SIGTERM), text[-3000:]
    if status == PREEMPTED_EXIT_STATUS:
      assert "stopped by SIGTERM" in text and "Traceback" not in text, text[-3000:]
    if status == -signal.SIGTERM:  # landed after the loop ended: the default action, with the work already saved
      assert _state(model_dir)[0] == _state(straight_dir)[0], text[-3000:]
  else:
    assert status in (-signal.SIGKILL, 0), text[-3000:]
  with open(log_path, "a") as log:
    rerun = subprocess.run(command, cwd=repo_root, stdout=subprocess.DEVNULL, stderr=log, timeout=900)
  assert rerun.returncode == 0, open(log_path).read()[-3000:]
  _assert_same_as_straight(straight_dir, model_dir, repeats_allowed=sig == signal.SIGKILL)
  return status


def test_kill_9_during_sft_resumes_exactly(straight, sft_checkpoint, tmp_path, repo_root):
  status = _signal_trial("sft", signal.SIGKILL, 0, straight("sft"), sft_checkpoint, str(tmp_path / "killed"),
                         repo_root)
  assert status == -signal.SIGKILL  # the kill landed before the end


@pytest.mark.slow
@pytest.mark.parametrize("name, sig, seed", [
    *[(n, signal.SIGKILL, s) for n in ("sft", "scorer", "rl", "iterative_ppo") for s in (1, 2)],
    *[(n, signal.SIGTERM, s) for n in ("scorer", "rl", "iterative_ppo") for s in (1, 2)]],
    ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v))
def test_random_signal_trials(name, sig, seed, straight, sft_checkpoint, tmp_path, repo_root):
  _signal_trial(name, sig, seed, straight(name), sft_checkpoint, str(tmp_path / "trial"), repo_root)
