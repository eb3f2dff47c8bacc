"""The trainer skeleton (training/loop.py) by hand: settings validation, the fingerprint check, the finiteness
stop, the vocabulary check, the lazily created checkpoint directory, and run_steps' log/eval/save cadence on a
counting step (no model)."""

import json
import os

import numpy as np
import pytest

from mtpo_jax import partitioning
from mtpo_jax.checkpoints import CheckpointError
from mtpo_jax.testing import project_vocabulary, tiny_config
from mtpo_jax.training import loop as lp


def test_loop_settings_reject_non_positive_values():
  assert lp.LoopSettings().num_steps == 1000
  for name in ("num_steps", "batch_size", "log_every", "eval_every", "save_every", "keep_checkpoints"):
    with pytest.raises(ValueError, match=f"LoopSettings.{name} must be >= 1"):
      lp.LoopSettings(**{name: 0})


def test_fingerprint_compares_every_entry_after_a_json_round_trip():
  saved = json.loads(json.dumps({"seed": 0, "data": (3, 1), "model_config": {"d": "8"}, "extra": 1}))
  lp.check_fingerprint(saved, {"seed": 0, "data": (3, 1), "model_config": {"d": "8"}}, "/run")  # tuples ~ lists
  with pytest.raises(CheckpointError, match=r"/run was written by a different run .*'seed': \(0, 1\)"):
    lp.check_fingerprint(saved, {"seed": 1}, "/run")
  with pytest.raises(CheckpointError, match="'missing': \\(None, 2\\)"):
    lp.check_fingerprint(saved, {"missing": 2}, "/run")  # a key the checkpoint never saved is a mismatch


class _Ckpt:
  directory = "/run/checkpoints"

  def latest_good_step(self):
    return 4


def test_finiteness_stop_watches_the_named_values_or_all():
  ok = lp.check_finite({"loss": np.float32(1.5), "other": np.nan}, 5, _Ckpt())
  assert ok["loss"] == 1.5 and np.isnan(ok["other"])  # unwatched NaN passes, values come back as floats
  with pytest.raises(FloatingPointError, match=r"non-finite loss/grad/update at step 5 .* step 4 in /run/ch"):
    lp.check_finite({"loss": 1.0, "grad_norm": np.inf}, 5, _Ckpt())
  with pytest.raises(FloatingPointError, match=r"non-finite metrics at step 6 \({'other': nan}\)"):
    lp.check_finite({"loss": 1.0, "other": np.nan}, 6, _Ckpt(), watched=None)


def test_vocabulary_must_fit_the_embedding():
  vocab = project_vocabulary()
  vocab.check_fits(vocab.vocab_size)
  with pytest.raises(ValueError, match=f"has {vocab.vocab_size} pieces but the policy's T5Config.vocab_size is 64"):
    vocab.check_fits(64, "the policy")
  with pytest.raises(ValueError, match="T5Config.vocab_size is 64"):
    lp.TrainLoop("/unused", partitioning.MeshSpec(), save_every=1, keep_checkpoints=1, vocab=vocab,
                 model_config=tiny_config(64))


def test_run_steps_logs_evaluates_and_saves_on_schedule(tmp_path):
  """A counting 'step' (count + 1); every save, log and eval lands where LoopSettings says, and the last
  checkpoint restores under its own fingerprint only."""
  settings = lp.LoopSettings(num_steps=5, log_every=2, eval_every=3, save_every=2, keep_checkpoints=5)
  evaluated = []

  def run(start, state):
    with lp.TrainLoop(str(tmp_path), partitioning.MeshSpec(), save_every=settings.save_every,
                      keep_checkpoints=settings.keep_checkpoints) as loop:
      loop.start(settings.num_steps, start, "count")
      step = lambda s, i: ({"count": s["count"] + 1}, {"loss": np.float32(s["count"] + 1)})
      return lp.run_steps(loop, state, step, start=start, settings=settings, meta={"seed": 0},
                          evaluate=lambda s: evaluated.append(int(s["count"])) or {"value": float(s["count"])},
                          postfix=lambda m: {"loss": f"{m['loss']:.0f}"},
                          derived=lambda m, step: {"step_twice": 2.0 * step})

  assert not os.path.exists(tmp_path / "checkpoints")  # nothing is created before the first save
  state, last = run(0, {"count": np.int32(0)})
  assert int(state["count"]) == 5 and evaluated == [3, 5] and last["loss"] == 5.0 and last["eval_value"] == 5.0
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4", "5"]  # every save_every, and the last step
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [(r["step"], sorted(k for k in r if k not in ("step", "time"))) for r in rows] == [
      (2, ["train/loss", "train/step_twice"]), (3, ["eval/value"]), (4, ["train/loss", "train/step_twice"]),
      (5, ["train/loss", "train/step_twice"]), (5, ["eval/value"])]
  with lp.TrainLoop(str(tmp_path), partitioning.MeshSpec(), save_every=2, keep_checkpoints=5) as loop:
    target, sharding = {"count": np.zeros((), np.int32)}, {"count": loop.partitioner.replicated}
    restored, meta = loop.restore(target, sharding, {"seed": 0})
    assert int(restored["count"]) == 5 and meta["data_position"] == 5
    with pytest.raises(CheckpointError, match="different run"):
      loop.restore(target, sharding, {"seed": 1})


def test_an_init_checkpoint_of_another_vocabulary_is_refused_by_name():
  """The check compares the checkpoint with the configured model (not with itself, which let a Flax shape error
  through)."""
  import jax
  import flax.linen as nn
  import jax.numpy as jnp
  import optax
  from mtpo_jax.models.t5 import T5
  from mtpo_jax.models.value import T5Value
  from mtpo_jax.training.state import init_actor_critic_state
  x = jnp.ones((1, 8), jnp.int32)
  other = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype),
                       nn.unbox(jax.eval_shape(T5(tiny_config(128)).init, jax.random.PRNGKey(0), x, x)["params"]))
  configured = tiny_config(64)
  partitioner = partitioning.Partitioner(partitioning.make_mesh(partitioning.MeshSpec()))
  with pytest.raises(ValueError, match="init_checkpoint's parameters do not match policy_config .*vocabulary"):
    init_actor_critic_state(T5(configured), T5Value(configured), other, optax.sgd(0.1), optax.sgd(0.1), 0, 8,
                            partitioner)
