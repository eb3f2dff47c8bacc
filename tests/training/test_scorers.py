"""Learned judges: BT and preference steps against hand formulas, learning a separable synthetic preference,
ECE by hand, exact antisymmetry of the learned judges, and the Gin run end to end with exact resume."""

import functools
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax import main, partitioning
from mtpo_jax.data import dialogue_format as fmt
from mtpo_jax.data import education_examples as ex
from mtpo_jax.data.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.oracles import learned
from mtpo_jax.rl import scorer_steps as steps
from mtpo_jax.training import scorer_trainer as st
from mtpo_jax.training.checkpoints import Checkpointer, load_params
from mtpo_jax.training.optimizers import make_optimizer
from mtpo_jax.training.state import TrainState

SMALL = T5Config(vocab_size=32, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_encoder_layers=1,
                 num_decoder_layers=1)
TOKEN = 5  # the synthetic reward: a sequence containing it is preferred


def _state(config, tx, length=8, seed=0):
  model = T5Value(config)
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.ones((1, length), jnp.int32))["params"])
  # a random head, so rewards differ (the head starts at zero)
  params["value_head"] = jax.random.normal(jax.random.PRNGKey(seed + 1), params["value_head"].shape)
  params["value_bias"] = jnp.asarray(0.3)
  return model, TrainState.create(params, tx, jax.random.PRNGKey(seed + 2))


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def test_bt_step_loss_and_update_match_hand_formula():
  tx = optax.sgd(0.1)
  model, state = _state(SMALL, tx)
  rng = np.random.default_rng(0)
  batch = {"ids_a": rng.integers(3, 32, (4, 8)).astype(np.int32), "ids_b": rng.integers(3, 32, (4, 8)).astype(np.int32),
           "label": np.array([0.9, 0.2, 0.5, 1.0], np.float32)}
  batch["ids_b"][0, 5:] = 0  # padding in one row
  r_a = np.asarray(model.apply({"params": state.params}, batch["ids_a"]), np.float64)  # separate forwards
  r_b = np.asarray(model.apply({"params": state.params}, batch["ids_b"]), np.float64)
  p, d = batch["label"].astype(np.float64), r_a - r_b
  hand = np.mean(-(p * _log_sigmoid(d) + (1 - p) * _log_sigmoid(-d)))
  step = functools.partial(steps.reward_model_train_step, model=model, tx=tx, schedule=optax.constant_schedule(0.1))
  new, metrics = jax.jit(step)(state, batch)
  np.testing.assert_allclose(float(metrics["loss"]), hand, rtol=1e-5)
  # the labelled-ties row does not count: rows 0, 1, 3 are decisive
  hand_acc = np.mean([(d[i] > 0) == (p[i] > 0.5) for i in (0, 1, 3)])
  np.testing.assert_allclose(float(metrics["accuracy"]), hand_acc)
  # SGD: the update is -lr * grad, so its norm is lr times the gradient's
  np.testing.assert_allclose(float(metrics["update_norm"]), 0.1 * float(metrics["grad_norm"]), rtol=1e-5)
  assert int(new.step) == 1
  # eval step: padding rows (weight 0) drop out of loss and accuracy
  ev = steps.reward_model_eval_step(state.params, {**batch, "weight": np.array([1, 1, 1, 0], np.float32)},
                                    model=model)
  hand3 = np.mean(-(p * _log_sigmoid(d) + (1 - p) * _log_sigmoid(-d))[:3])
  np.testing.assert_allclose(float(ev["loss"]), hand3, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(ev["probability"]), 1 / (1 + np.exp(-d)), rtol=1e-5)


@pytest.mark.parametrize("kind", ["cross_entropy", "squared"])
def test_preference_step_loss_matches_hand_formula(kind):
  tx = optax.sgd(0.1)
  model, state = _state(SMALL, tx)
  batch = {"ids": np.random.default_rng(1).integers(3, 32, (4, 8)).astype(np.int32),
           "label": np.array([0.7, 0.0, 0.5, 0.95], np.float32)}
  z = np.asarray(model.apply({"params": state.params}, batch["ids"]), np.float64)
  p, q = batch["label"].astype(np.float64), 1 / (1 + np.exp(-z))
  hand = (np.mean(-(p * _log_sigmoid(z) + (1 - p) * _log_sigmoid(-z))) if kind == "cross_entropy"
          else np.mean((q - p) ** 2))
  step = functools.partial(steps.preference_model_train_step, model=model, tx=tx,
                           schedule=optax.constant_schedule(0.1), loss_kind=kind)
  _, metrics = jax.jit(step)(state, batch)
  np.testing.assert_allclose(float(metrics["loss"]), hand, rtol=1e-5)


def _synthetic(n, seed, length=6):
  """Pairs of token sequences holding c_a != c_b copies of TOKEN (0-3); the judge is BT on the counts:
  label = sigmoid(c_a - c_b). Separable: the more copies, the better."""
  rng = np.random.default_rng(seed)
  others = [t for t in range(3, 32) if t != TOKEN]

  def sequences(counts):
    x = rng.choice(others, (n, length)).astype(np.int32)
    for i, c in enumerate(counts):
      x[i, rng.choice(length, c, replace=False)] = TOKEN
    return x

  c_a = rng.integers(0, 4, n)
  c_b = (c_a + rng.integers(1, 4, n)) % 4
  return sequences(c_a), sequences(c_b), (1 / (1 + np.exp(c_b - c_a))).astype(np.float32)


def _fit(train_step, eval_step, model, state, train, held_out, steps_=400):
  tx_step, ev = jax.jit(train_step), jax.jit(eval_step)
  before = float(ev(state.params, held_out)["accuracy"])
  order = np.random.default_rng(2).permutation(len(train["label"]))
  for i in range(steps_):
    rows = order[np.arange(i * 32, (i + 1) * 32) % len(order)]
    state, _ = tx_step(state, {k: v[rows] for k, v in train.items()})
  out = ev(state.params, held_out)
  return before, float(out["accuracy"]), st.calibration(np.asarray(out["probability"]), held_out["label"])["ece"]


def test_reward_and_preference_models_learn_a_separable_preference():
  tx, schedule = make_optimizer("adafactor", learning_rate=3e-3, decay_rate=0.8)
  (a, b, y), (ea, eb, ey) = _synthetic(4096, 0), _synthetic(256, 1)
  # REWARD MODEL on (a, b, p)
  model, state = _state(SMALL, tx, length=6)
  before, acc, ece = _fit(functools.partial(steps.reward_model_train_step, model=model, tx=tx, schedule=schedule),
                          functools.partial(steps.reward_model_eval_step, model=model), model, state,
                          {"ids_a": a, "ids_b": b, "label": y}, {"ids_a": ea, "ids_b": eb, "label": ey})
  assert before < 0.7 and acc >= 0.95 and ece < 0.2, (before, acc, ece)
  # PREFERENCE MODEL on the pair "a 2 b", trained in both orders
  pair = lambda x, z: np.concatenate([x, np.full((len(x), 1), 2, np.int32), z], 1)
  train = {"ids": np.concatenate([pair(a, b), pair(b, a)]), "label": np.concatenate([y, 1 - y])}
  model, state = _state(SMALL, tx, length=13)
  before, acc, ece = _fit(functools.partial(steps.preference_model_train_step, model=model, tx=tx, schedule=schedule),
                          functools.partial(steps.preference_model_eval_step, model=model), model, state,
                          train, {"ids": pair(ea, eb), "label": ey})
  assert before < 0.7 and acc >= 0.95 and ece < 0.2, (before, acc, ece)


def test_ece_matches_hand_computation():
  p = np.array([0.05, 0.15, 0.12, 0.95, 1.0, 0.5])
  y = np.array([0.0, 0.2, 0.0, 1.0, 0.8, 1.0])
  out = st.calibration(p, y, num_bins=10)
  # bins: {0.05} -> 0, {0.15, 0.12} -> 1, {0.5} -> 5, {0.95, 1.0} -> 9 (the last bin is closed)
  hand = (1 * abs(0.05 - 0.0) + 2 * abs(0.135 - 0.1) + 1 * abs(0.5 - 1.0) + 2 * abs(0.975 - 0.9)) / 6
  np.testing.assert_allclose(out["ece"], hand, rtol=1e-12)
  assert [r["count"] for r in out["reliability"]] == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]
  np.testing.assert_allclose(out["reliability"][9]["mean_predicted"], 0.975)
  assert st.calibration(np.array([0.3, 0.7]), np.array([0.3, 0.7]))["ece"] == 0.0


@pytest.fixture(scope="module")
def education():
  records = generator.generate(4, 7, "eval")
  alts = [generator.replay(r, f"t:{i}") for i, r in enumerate(records)]
  a = [record_to_conversation(r, f"c{i}") for i, r in enumerate(records)]
  b = [record_to_conversation(r, f"c{i}") for i, r in enumerate(alts)]
  vocab = Vocabulary(DEFAULT_SPM_PATH)
  config = SMALL.replace(vocab_size=3072)
  model, state = _state(config, optax.sgd(0.1), seed=3)
  return records, alts, a, b, vocab, config, model, state.params


def test_rendering_is_the_training_data_format(education):
  records, alts, a, b, vocab, *_ = education
  count = learned.token_counter(vocab)
  for length in (10**6, 384):
    text = learned.preference_model_inputs(a[:1], b[:1], vocab, length)[0]
    assert text == ex.conversation_pair_example(records[0], alts[0], 0.5, length - learned.EOS_RESERVE, count)["inputs"]
    assert "\nTeacher: " in text and "\nB:\n" in text
    text = learned.reward_model_inputs(a[:1], vocab, length)[0]
    fmt_text = fmt.conversation_input(records[0]["background_info"]["topic"], ex.record_turns(records[0]),
                                      length - learned.EOS_RESERVE, count)[0]
    assert text == fmt_text
  assert "[earlier turns omitted]" in text and len(vocab.encode(text)) <= 384 - learned.EOS_RESERVE


def test_learned_judges_are_exactly_antisymmetric(education):
  records, alts, a, b, vocab, config, model, params = education
  judge = learned.LearnedPreferenceJudge(config, params, vocab, input_length=256, max_batch=4)
  p_ab, p_ba = judge.preference(a, b), judge.preference(b, a)
  np.testing.assert_array_equal(p_ab + p_ba, np.ones(len(a)))
  np.testing.assert_array_equal(judge.preference(a, a), np.full(len(a), 0.5))
  raw = judge.raw_preference(a, b) + judge.raw_preference(b, a)
  assert np.abs(raw - 1).max() > 1e-4  # the model alone is not antisymmetric; symmetrising makes it so
  np.testing.assert_allclose(p_ab, 0.5 * (judge.raw_preference(a, b) + 1 - judge.raw_preference(b, a)), atol=1e-12)
  # the judge scores what the trainer trains on: the eval step's probability on the training arrays
  arrays = st.preference_arrays(list(zip(a, b, [0.5] * len(a))), vocab, 256)
  ev = steps.preference_model_eval_step(params, arrays, model=model)
  np.testing.assert_allclose(np.asarray(ev["probability"])[0::2], judge.raw_preference(a, b), atol=1e-5)

  rm = learned.LearnedRewardJudge(config, params, vocab, input_length=256)
  r = rm.rewards(a + b)
  np.testing.assert_allclose(rm.preference(a, b), 1 / (1 + np.exp(-(r[:4] - r[4:]))), rtol=1e-12)
  np.testing.assert_array_equal(rm.preference(a, b) + rm.preference(b, a), np.ones(len(a)))
  np.testing.assert_array_equal(rm.preference(a, a), np.full(len(a), 0.5))
  with pytest.raises(ValueError, match="different contexts"):
    rm.preference(a[:2], b[1:3])


def test_backbone_initialises_from_a_policy_checkpoint(tmp_path):
  policy = T5(SMALL)
  x = jnp.ones((1, 8), jnp.int32)
  pp = jax.tree.map(lambda v: v + 1.0, nn.unbox(policy.init(jax.random.PRNGKey(0), x, x)["params"]))
  ckpt = Checkpointer(str(tmp_path / "sft"), save_every=1)
  ckpt.save(1, TrainState.create(pp, optax.sgd(0.1), jax.random.PRNGKey(0)), {"data_position": 1}, force=True)
  ckpt.close()
  tx = optax.adafactor(1e-3, decay_rate=0.8)
  spec = partitioning.MeshSpec(data=4, fsdp=2)
  partitioner = partitioning.Partitioner(partitioning.make_mesh(spec), spec.rules)
  init_fn, abstract, shardings = st._state_layout(T5Value(SMALL), tx, 8, 0, partitioner)
  state = st._init_state(init_fn, abstract, shardings, 0, partitioner, load_params(str(tmp_path / "sft")))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params["backbone"]), jax.device_get(pp))
  with pytest.raises(ValueError, match="does not match"):
    bigger = st._state_layout(T5Value(SMALL.replace(d_model=64)), tx, 8, 0, partitioner)
    st._init_state(*bigger, 0, partitioner, load_params(str(tmp_path / "sft")))


N = 2
ARGS = ["--gin_file=experiments/preference_model_tiny.gin", "--gin_file=meshes/cpu.gin",
        "--gin.T5Config.d_model=32", "--gin.T5Config.d_ff=64", "--gin.T5Config.num_encoder_layers=1",
        "--gin.T5Config.num_decoder_layers=1", "--gin.train_preference_model.batch_size=8",
        "--gin.train_preference_model.input_length=96", "--gin.train_preference_model.num_train_pairs=8",
        "--gin.train_preference_model.num_eval_pairs=3", f"--gin.train_preference_model.save_every={N}",
        "--gin.train_preference_model.log_every=1", "--gin.train_preference_model.eval_every=1000"]


def _losses(d):
  with open(os.path.join(d, "metrics.jsonl")) as f:
    return {r["step"]: r["train/loss"] for r in map(json.loads, f) if "train/loss" in r}


def test_preference_model_gin_run_reports_and_resumes_exactly(tmp_path, repo_root):
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  main.run(ARGS + [f"--gin.MODEL_DIR='{straight}'", f"--gin.train_preference_model.num_steps={2 * N}"])
  proc = subprocess.run([sys.executable, "-m", "mtpo_jax.main", *ARGS, f"--gin.MODEL_DIR='{resumed}'",
                         f"--gin.train_preference_model.num_steps={N}"], cwd=repo_root, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(os.path.join(resumed, "eval_report.json"))
  main.run(ARGS + [f"--gin.MODEL_DIR='{resumed}'", f"--gin.train_preference_model.num_steps={2 * N}"])
  a, b = _losses(straight), _losses(resumed)
  assert sorted(b) == list(range(1, 2 * N + 1))
  for s in range(N + 1, 2 * N + 1):
    assert a[s] == b[s], (s, a[s], b[s])
  jax.tree.map(np.testing.assert_array_equal, load_params(os.path.join(straight, "checkpoints")),
               load_params(os.path.join(resumed, "checkpoints")))
  report = json.load(open(os.path.join(resumed, "eval_report.json")))
  assert report["kind"] == "preference" and report["step"] == 2 * N and report["examples"] == 6  # both orders
  assert 0 <= report["accuracy"] <= 1 and 0 <= report["ece"] <= 1 and len(report["reliability"]) == 10
  assert sum(r["count"] for r in report["reliability"]) == 6
  assert "accuracy" in report["symmetrized"] and report["antisymmetry_gap"] >= 0
  # the run directory loads as a judge
  judge = learned.LearnedPreferenceJudge.from_checkpoint(resumed)
  records = generator.generate(2, 0, "eval")
  convs = [record_to_conversation(r, "x") for r in records]
  p = judge.preference(convs[:1], [record_to_conversation(records[1], "x")])
  np.testing.assert_array_equal(p + judge.preference(convs[1:], convs[:1]), [1.0])
  with pytest.raises(ValueError, match="preference model, not a reward"):
    learned.LearnedRewardJudge.from_checkpoint(resumed)
