"""Deep Iterative PPO's loop (training/iterative_ppo.py, q_function.py): Monte-Carlo returns by hand, a Q fit that
learns a response-dependent return, the versioned files of each iteration, exact resume through the Gin entrypoint
(at an iteration boundary and mid-iteration), and clear errors for bad input."""

import json
import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from jax.experimental.compilation_cache import compilation_cache as jax_cache

from mtpo_jax import main, partitioning
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.rl import ppo
from mtpo_jax.rl import rewards as rw
from mtpo_jax.testing import tiny_config
from mtpo_jax.training import iterative_ppo as ip
from mtpo_jax.training import q_function as qf
from mtpo_jax.checkpoints import Checkpointer, CheckpointError, load_params
from mtpo_jax.training.loop import LoopSettings
from mtpo_jax.training.optimizers import make_optimizer
from mtpo_jax.types import Context, Conversation, Turn

# The tiny experiment shrunk further; batch sizes 8 divide the 8-device data axis of meshes/cpu.gin in tests.
SMALL = ["--gin.T5Config.d_model=32", "--gin.T5Config.d_kv=8", "--gin.T5Config.d_ff=64",
         "--gin.ConversationSettings.input_length=64", "--gin.ConversationSettings.max_turn_tokens=8",
         "--gin.ConversationSettings.max_agent_turns=2", "--gin.QSettings.steps=4",
         "--gin.PPOHParams.steps=2", "--gin.QSettings.gamma=0.5",
         "--gin.q/make_optimizer.name='adamw'", "--gin.q/make_optimizer.learning_rate=3e-3"]


def random_params(module, *args, seed: int):
  """Parameters of the module's shapes from numpy (layer-norm scales 1): no slow threefry initialiser compiles."""
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)["params"])
  return jax.tree_util.tree_map_with_path(
      lambda p, s: np.ones(s.shape, np.float32) if "norm" in jax.tree_util.keystr(p)
      else (0.3 * rng.normal(size=s.shape)).astype(np.float32), shapes)


def test_monte_carlo_returns_by_hand():
  mask = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
  turn_rows = np.array([[0, 2, 4], [1, 3, -1]], np.int32)
  # Conversation rewards go on the last agent turn: G_h = gamma^(H-h) R.
  rewards = rw.terminal_rewards(np.array([2.0, -1.0]), mask)
  np.testing.assert_array_equal(rewards, [[0, 0, 2], [0, -1, 0]])
  g = qf.row_returns(rewards, mask, turn_rows, 5, gamma=0.9)
  np.testing.assert_allclose(g, [2 * 0.81, -0.9, 2 * 0.9, -1.0, 2.0], rtol=1e-6)
  # Per-turn rewards [C, T]: G_2 = 2, G_1 = 0 + 0.9 * 2, G_0 = 1 + 0.9 * 1.8.
  per_turn = rw.terminal_rewards(np.array([[1.0, 0.0, 2.0], [0.5, 0.5, 9.0]]), mask)
  g = qf.row_returns(per_turn, mask, turn_rows, 5, gamma=0.9)
  np.testing.assert_allclose(g, [2.62, 0.5 + 0.45, 1.8, 0.5, 2.0], rtol=1e-6)
  with pytest.raises(ValueError, match="rewards must have shape"):
    rw.terminal_rewards(np.zeros(3), mask)


def test_q_targets_and_holdout():
  returns = np.array([1.0, 3.0, 5.0])
  t = qf.QTargets.fit(returns, "mse", normalize=True)
  np.testing.assert_allclose(t.targets(returns), (returns - 3.0) / np.std(returns), rtol=1e-6)
  np.testing.assert_allclose(t.values(t.targets(returns)), returns, rtol=1e-6)
  assert qf.QTargets.fit(returns, "mse", normalize=False).targets(returns).tolist() == returns.tolist()
  with pytest.raises(ValueError, match=r"returns in \[0, 1\]"):
    qf.QTargets.fit(returns, "cross_entropy", normalize=False)
  held = qf.heldout_conversations(8, 0.25, seed=0, iteration=3)
  assert held.sum() == 2 and (held == qf.heldout_conversations(8, 0.25, 0, 3)).all()
  assert qf.heldout_conversations(8, 0.0, 0, 3).sum() == 0


def test_default_rewards_follow_the_environment():
  car = Context("c", {"car": {"make": "Ford"}}, {})
  sold = Conversation(car, (Turn("seller", "I can do $15,000.", True), Turn("buyer", "Deal! I'll take it.", False)))
  assert ip.reward_function(None, "negotiation")([sold]).tolist() == [15.0]  # the sale price in $1000s
  assert ip.reward_function(lambda cs: np.ones(len(cs)), "education")([sold]).tolist() == [1.0]
  with pytest.raises(TypeError, match="no scalar reward"):
    ip.reward_function(object(), "education")
  with pytest.raises(ValueError, match="unknown environment"):
    ip.reward_function(None, "chess")


def _bad_call(tmp_path, **overrides):
  opt = (optax.sgd(0.1), None)
  kwargs = dict(policy_optimizer=opt, value_optimizer=opt, q_optimizer=opt, hparams=ppo.PPOHParams(batch_size=8),
                q=ip.QSettings(batch_size=8))
  kwargs.update(overrides)
  return ip.train_iterative_ppo(str(tmp_path / "run"), T5Config(vocab_size=3072), **kwargs)


def test_bad_input_fails_clearly(tmp_path):
  with pytest.raises(ValueError, match="LoopSettings.num_steps must be >= 1"):
    _bad_call(tmp_path, loop=LoopSettings(num_steps=0))
  with pytest.raises(ValueError, match=r"PPOHParams.batch_size = 6 must be a positive multiple of 8, "):
    _bad_call(tmp_path, hparams=ppo.PPOHParams(batch_size=6))
  with pytest.raises(ValueError, match="unknown QSettings.init"):
    _bad_call(tmp_path, q=ip.QSettings(init="zeros"))
  with pytest.raises(ValueError, match="unknown Q loss"):
    _bad_call(tmp_path, q=ip.QSettings(loss="hinge"))
  missing = str(tmp_path / "no_such_sft")
  with pytest.raises(CheckpointError, match=missing):
    _bad_call(tmp_path, init_checkpoint=missing)
  assert not os.path.exists(tmp_path / "run" / "checkpoints")  # nothing was started


# THE LOOP THROUGH THE GIN ENTRYPOINT

@pytest.fixture(scope="module")
def persistent_compilation_cache(tmp_path_factory):
  """JAX's persistent compilation cache for this module: a resumed job rebuilds everything from disk but reuses the
  programs the first one compiled, as a restarted job on a shared cache would (compiling dominates on CPU)."""
  old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax_cache.reset_cache()
  yield
  jax.config.update("jax_compilation_cache_dir", old[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
  jax_cache.reset_cache()


def _run(model_dir, iterations, sft):
  """One job: gin parsed afresh, state, data and Q_i rebuilt from MODEL_DIR."""
  main.run(["--gin_file=experiments/iterative_ppo_tiny.gin", "--gin_file=meshes/cpu.gin", *SMALL,
            f"--gin.MODEL_DIR='{model_dir}'", f"--gin.SFT_CHECKPOINT='{sft}'",
            f"--gin.LoopSettings.num_steps={iterations}", "--allow_config_change"])  # resumes run longer


def _lines(model_dir):
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _same_metrics(a, b):
  assert a["step"] == b["step"] and a.keys() == b.keys()
  for k, v in a.items():
    if k != "time" and not k.endswith(("_s", "_per_s")):  # wall-clock timings differ
      np.testing.assert_allclose(b[k], v, rtol=1e-6, atol=1e-7, err_msg=k)


def _state(model_dir):
  """The whole top-level checkpoint (policy, baseline value, both optimizer states) as host arrays."""
  manager = ocp.CheckpointManager(os.path.join(model_dir, "checkpoints"))
  return manager.restore(manager.latest_step(), args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]


def _same_state(a, b):
  jax.tree.map(np.testing.assert_array_equal, _state(a), _state(b))


@pytest.fixture(scope="module")
def sft_checkpoint(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("sft") / "checkpoints")
  x = jnp.ones((1, 4), jnp.int32)
  config = tiny_config(3072)  # t5_tiny.gin with SMALL
  ckpt = Checkpointer(d, save_every=1, keep=1)
  ckpt.save(1, {"params": random_params(T5(config), x, x, seed=0)}, {}, force=True)
  ckpt.close()
  return d


@pytest.fixture(scope="module")
def loop_runs(tmp_path_factory, sft_checkpoint, persistent_compilation_cache):
  """2 iterations straight, and 1 iteration + a new job resuming for the 2nd."""
  root = tmp_path_factory.mktemp("loop")
  straight, resumed = str(root / "straight"), str(root / "resumed")
  _run(straight, 2, sft_checkpoint)
  _run(resumed, 1, sft_checkpoint)
  _run(resumed, 2, sft_checkpoint)
  return straight, resumed


def test_loop_versions_every_iteration_and_resumes_exactly(loop_runs):
  straight, resumed = loop_runs
  # VERSIONED FILES of each iteration
  lines = _lines(straight)
  assert [r["step"] for r in lines] == [1, 2]
  for i in (0, 1):
    d = os.path.join(straight, "iterations", f"{i:03d}")
    assert {"conversations.jsonl", "rows.npz", "collect.json", "q", "q.json", "ppo.json"} <= set(os.listdir(d))
    with open(os.path.join(d, "conversations.jsonl")) as f:
      convs = [json.loads(line) for line in f]
    assert len(convs) == 8 and sum(c["heldout"] for c in convs) == 2  # q_holdout_fraction 0.25
    with np.load(os.path.join(d, "rows.npz")) as z:
      rows = {k: z[k] for k in z.files}
    turns = np.array([sum(t["is_agent"] for t in c["turns"]) for c in convs])
    assert len(rows["encoder_ids"]) == turns.sum() == rows["turn_mask"].sum()
    reward = np.array([c["reward"] for c in convs])
    assert lines[i]["train/reward_mean"] == pytest.approx(reward.mean(), rel=1e-6)  # pi_i's ground-truth reward
    expected = reward[rows["conversation"]] * 0.5 ** (turns[rows["conversation"]] - 1 - rows["turn"])  # gamma 0.5
    np.testing.assert_allclose(rows["returns"], expected, rtol=1e-6)
    q_params = load_params(os.path.join(d, "q"))
    assert "value_head" in q_params and float(np.abs(q_params["value_head"]).max()) > 0  # Q_i was fit
  for key in ("reward_mean", "q_loss", "q_heldout_mse", "q_heldout_ev", "ppo_policy_loss", "ppo_clip_fraction",
              "ppo_kl_to_start", "ppo_q_reward", "ppo_decode_tokens_per_s", "collect_s", "q_fit_s", "ppo_s"):
    assert f"train/{key}" in lines[-1], key
  assert lines[-1]["train/ppo_kl_to_start_last"] > 0  # the policy moved away from pi_i

  # 1 + RESUME + 1 == 2 STRAIGHT
  for a, b in zip(lines, _lines(resumed), strict=True):
    _same_metrics(a, b)
  _same_state(straight, resumed)


def test_a_run_killed_during_ppo_redoes_only_ppo(loop_runs, sft_checkpoint, tmp_path):
  """D_multi and Q_1 are reloaded (their metrics, timings included, come back from disk), only PPO is redone,
  and the run ends where the uninterrupted one did."""
  straight, resumed = loop_runs
  killed = str(tmp_path / "killed")
  shutil.copytree(resumed, killed)
  shutil.rmtree(os.path.join(killed, "checkpoints", "2"))
  os.remove(os.path.join(killed, "iterations", "001", "ppo.json"))
  with open(os.path.join(killed, "metrics.jsonl"), "w") as f:
    f.write(json.dumps(_lines(resumed)[0]) + "\n")
  _run(killed, 2, sft_checkpoint)
  again = _lines(killed)[-1]
  _same_metrics(_lines(resumed)[-1], again)
  for k in ("train/collect_s", "train/q_fit_s"):
    assert again[k] == _lines(resumed)[-1][k], k  # loaded, not redone
  _same_state(straight, killed)


def test_q_fit_learns_a_return_that_depends_on_the_response(persistent_compilation_cache):
  # The loop's Q setup (SMALL: T5 shapes, q input 64 + 8, batch 8, AdamW 3e-3), so the programs come from the cache.
  config = tiny_config(3072)
  partitioner = partitioning.Partitioner(partitioning.make_mesh(partitioning.MeshSpec()))
  tx, _ = make_optimizer("adamw", 3e-3, decay_rate=0.8)
  q = qf.QFunction(T5Value(config), tx, partitioner, input_length=72, batch_size=8, loss="mse", seed=0)
  x = jnp.ones((1, 4), jnp.int32)
  policy = jax.device_put(random_params(T5(config), x, x, seed=0))
  rng = np.random.default_rng(0)
  n, states = 64, rng.integers(3, 3000, size=(4, 6))
  which = rng.integers(4, size=n)  # one of 4 states, each with its own value
  enc = np.zeros((n, 64), np.int32)
  enc[:, :6], enc[:, 6] = states[which], 1  # EOS-terminated
  good = rng.random(n) < 0.5
  dec = np.zeros((n, 8), np.int32)
  dec[:, :2], dec[:, 2] = np.where(good, 10, 20)[:, None], 1  # response "10 10" or "20 20", then EOS
  mask = (dec != 0).astype(np.float32)
  ids = ppo.q_input_ids(enc, dec, mask, 72)
  returns = (0.5 * which + np.where(good, 1.0, -1.0)).astype(np.float32)  # Q(s, a) = V(s) +- 1 by the response
  heldout = np.arange(n) >= 48
  params, report = q.fit(q.params_from_policy(policy), ids, returns, heldout,
                         qf.QTargets.fit(returns[~heldout], "mse", False), num_steps=40, iteration=0)
  pred = np.asarray(q.predict(params, ids))
  mse = float(np.mean((pred[heldout] - returns[heldout]) ** 2))
  assert report["q_heldout_mse"] == pytest.approx(mse, rel=1e-4)
  assert report["q_heldout_mse_before"] == pytest.approx(np.mean(returns[heldout] ** 2), rel=1e-4)  # zero head
  assert mse < 0.25 * report["q_heldout_mse_before"]
  ev = 1 - np.var(returns[heldout] - pred[heldout]) / np.var(returns[heldout])
  assert report["q_heldout_ev"] == pytest.approx(ev, rel=1e-4) and ev > 0.9
  gap = pred[heldout & good].mean() - pred[heldout & ~good].mean() - 0.5 * (which[heldout & good].mean()
                                                                          - which[heldout & ~good].mean())
  assert gap == pytest.approx(2.0, abs=0.3)  # the response is worth +-1
