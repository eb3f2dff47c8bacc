"""Learned judges: BT and preference steps against hand formulas, learning a separable synthetic preference,
ECE by hand, exact antisymmetry of the learned judges, and the Gin run end to end with resume."""

import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax import main, partitioning
from mtpo_jax.text import dialogue_format as fmt
from mtpo_jax.data import education_examples as ex
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.models.value import T5Value
from mtpo_jax.oracles import learned
from mtpo_jax.rl import scorer_steps as steps
from mtpo_jax.testing import project_vocabulary, tiny_config
from mtpo_jax.training import scorer_eval
from mtpo_jax.training import scorer_trainer as st
from mtpo_jax.checkpoints import Checkpointer, load_params
from mtpo_jax.training.loop import LoopSettings
from mtpo_jax.training.optimizers import make_optimizer
from mtpo_jax.training.state import TrainState

SMALL = tiny_config(32, layers=1)
TOKEN, LENGTH, BATCH = 5, 6, 32  # synthetic reward: copies of TOKEN in a sequence of LENGTH tokens


def _params(config, seed=0):
  params = nn.unbox(jax.jit(T5Value(config).init)(jax.random.PRNGKey(seed), jnp.ones((1, 8), jnp.int32))["params"])
  # a random head, so rewards differ (the head starts at zero)
  params["value_head"] = jax.random.normal(jax.random.PRNGKey(seed + 1), params["value_head"].shape)
  params["value_bias"] = jnp.asarray(0.3, jnp.float32)  # not weakly typed: the state keeps one type across steps
  return params


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def _synthetic(n, seed):
  """Pairs of token sequences holding c_a != c_b copies of TOKEN (0-3); the judge is BT on the counts,
  label = sigmoid(c_a - c_b). Separable: the more copies, the better."""
  rng = np.random.default_rng(seed)
  others = [t for t in range(3, 32) if t != TOKEN]

  def sequences(counts):
    x = rng.choice(others, (n, LENGTH)).astype(np.int32)
    for i, c in enumerate(counts):
      x[i, rng.choice(LENGTH, c, replace=False)] = TOKEN
    return x

  c_a = rng.integers(0, 4, n)
  c_b = (c_a + rng.integers(1, 4, n)) % 4
  return sequences(c_a), sequences(c_b), (1 / (1 + np.exp(c_b - c_a))).astype(np.float32)


def _pair(x, z):
  return np.concatenate([x, np.full((len(x), 1), 2, np.int32), z], 1)  # "a <sep> b"


@pytest.fixture(scope="module")
def setup():
  """One model, optimizer and set of jitted steps per scorer, shared by the tests below (one compile each)."""
  tx, schedule = make_optimizer("adamw", learning_rate=3e-3, grad_clip_norm=None)
  model, params = T5Value(SMALL), _params(SMALL)
  state = TrainState.create(params, tx, jax.random.PRNGKey(2))
  out = {"params": params, "data": (_synthetic(4096, 0), _synthetic(256, 1))}
  for kind, train, ev in (("reward", steps.reward_model_train_step, steps.reward_model_eval_step),
                          ("preference", steps.preference_model_train_step, steps.preference_model_eval_step)):
    out[kind] = (model, state, jax.jit(functools.partial(train, model=model, tx=tx, schedule=schedule)),
                 jax.jit(functools.partial(ev, model=model)))
  return out


def _hand_batch(kind):
  a, b, y = _synthetic(BATCH, 5)
  y[:4] = [0.9, 0.2, 0.5, 1.0]  # soft labels and one tie
  b[0, 4:] = 0  # padding in one row
  return {"ids_a": a, "ids_b": b, "label": y} if kind == "reward" else {"ids": _pair(a, b), "label": y}


def _tree_distance(x, y):
  return float(optax.tree.norm(jax.tree.map(lambda u, v: u - v, x, y)))


def test_bt_step_matches_hand_formula(setup):
  model, state, train_step, eval_step = setup["reward"]
  batch = _hand_batch("reward")
  forward = jax.jit(lambda params, ids: model.apply({"params": params}, ids))
  r_a = np.asarray(forward(state.params, batch["ids_a"]), np.float64)  # two separate forwards
  r_b = np.asarray(forward(state.params, batch["ids_b"]), np.float64)
  p, d = batch["label"].astype(np.float64), r_a - r_b
  per_pair = -(p * _log_sigmoid(d) + (1 - p) * _log_sigmoid(-d))
  new, metrics = train_step(state, batch)
  np.testing.assert_allclose(float(metrics["loss"]), per_pair.mean(), rtol=1e-5)
  decisive = p != 0.5  # the tie does not count for accuracy
  np.testing.assert_allclose(float(metrics["accuracy"]), np.mean(((d > 0) == (p > 0.5))[decisive]), rtol=1e-6)
  np.testing.assert_allclose(float(metrics["update_norm"]), _tree_distance(new.params, state.params), rtol=1e-4)
  assert int(new.step) == 1 and float(metrics["grad_norm"]) > 0
  # eval step: rows of weight 0 (padding) drop out of the loss
  weight = np.ones(BATCH, np.float32)
  weight[BATCH // 2:] = 0
  ev = eval_step(state.params, {**batch, "weight": weight})
  np.testing.assert_allclose(float(ev["loss"]), per_pair[:BATCH // 2].mean(), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(ev["probability"]), 1 / (1 + np.exp(-d)), rtol=1e-5)


def test_preference_step_losses_match_hand_formulas(setup):
  model, state, train_step, _ = setup["preference"]
  batch = _hand_batch("preference")
  z = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(state.params, batch["ids"]), np.float64)
  p, q = batch["label"].astype(np.float64), 1 / (1 + np.exp(-z))
  _, metrics = train_step(state, batch)
  np.testing.assert_allclose(float(metrics["loss"]), np.mean(-(p * _log_sigmoid(z) + (1 - p) * _log_sigmoid(-z))),
                             rtol=1e-5)
  ev = jax.jit(functools.partial(steps.preference_model_eval_step, model=model, loss_kind="squared"))(
      state.params, batch)
  np.testing.assert_allclose(float(ev["loss"]), np.mean((q - p) ** 2), rtol=1e-5)  # the Brier score
  np.testing.assert_allclose(np.asarray(ev["probability"]), q, rtol=1e-5)


def _fit(scorer, train, held_out, num_steps):
  _, state, train_step, eval_step = scorer

  def evaluate(params):
    ones = np.ones(BATCH, np.float32)
    outs = [eval_step(params, {**{k: v[i:i + BATCH] for k, v in held_out.items()}, "weight": ones})
            for i in range(0, 256, BATCH)]
    prob = np.concatenate([o["probability"] for o in outs])
    return scorer_eval.accuracy(prob, held_out["label"]), scorer_eval.calibration(prob, held_out["label"])["ece"]

  before, _ = evaluate(state.params)
  order = np.random.default_rng(2).permutation(len(train["label"]))
  for i in range(num_steps):
    rows = order[np.arange(i * BATCH, (i + 1) * BATCH) % len(order)]
    state, _ = train_step(state, {k: v[rows] for k, v in train.items()})
  return (before, *evaluate(state.params))


def test_reward_and_preference_models_learn_a_separable_preference(setup):
  (a, b, y), (ea, eb, ey) = setup["data"]
  before, acc, ece = _fit(setup["reward"], {"ids_a": a, "ids_b": b, "label": y},
                          {"ids_a": ea, "ids_b": eb, "label": ey}, 150)
  assert before < 0.7 and acc >= 0.95 and ece < 0.2, (before, acc, ece)
  # the preference model sees the pair in both orders
  train = {"ids": np.concatenate([_pair(a, b), _pair(b, a)]), "label": np.concatenate([y, 1 - y])}
  before, acc, ece = _fit(setup["preference"], train, {"ids": _pair(ea, eb), "label": ey}, 250)
  assert before < 0.7 and acc >= 0.95 and ece < 0.2, (before, acc, ece)


def test_ece_matches_hand_computation():
  p = np.array([0.05, 0.15, 0.12, 0.95, 1.0, 0.5])
  y = np.array([0.0, 0.2, 0.0, 1.0, 0.8, 1.0])
  out = scorer_eval.calibration(p, y, num_bins=10)
  # bins: {0.05} -> 0, {0.15, 0.12} -> 1, {0.5} -> 5, {0.95, 1.0} -> 9 (the last bin is closed)
  hand = (1 * abs(0.05 - 0.0) + 2 * abs(0.135 - 0.1) + 1 * abs(0.5 - 1.0) + 2 * abs(0.975 - 0.9)) / 6
  np.testing.assert_allclose(out["ece"], hand, rtol=1e-12)
  assert [r["count"] for r in out["reliability"]] == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]
  np.testing.assert_allclose(out["reliability"][9]["mean_predicted"], 0.975)
  assert scorer_eval.calibration(np.array([0.3, 0.7]), np.array([0.3, 0.7]))["ece"] == 0.0
  # held-out accuracy: decisive labels only, a prediction of exactly 1/2 is half right (host and device agree)
  label = np.array([0.9, 0.1, 0.5, 0.8, 0.3])
  prob = np.array([0.6, 0.7, 0.9, 0.5, 0.2])
  assert scorer_eval.accuracy(prob, label) == (1 + 0 + 0.5 + 1) / 4
  assert float(steps.preference_accuracy(jnp.asarray(prob, jnp.float32), jnp.asarray(label, jnp.float32))) == 0.625


def test_eval_pairs_visit_every_row_once_in_order():
  arrays = {"ids": np.arange(10)[:, None] * np.ones((1, 3), np.int32), "label": np.linspace(0, 1, 10)}
  padded = list(st.EvalPairs(arrays, 4).in_order())
  assert [b["weight"].tolist() for b in padded][-1] == [1, 1, 0, 0]
  np.testing.assert_array_equal(np.concatenate([b["label"][b["weight"] > 0] for b in padded]), arrays["label"])


@pytest.mark.parametrize("kind", ["reward", "preference"])
def test_a_pair_task_reads_as_the_host_tokeniser_writes(kind, tmp_path):
  """The SeqIO path (pair task -> TensorFlow's SentencePiece op, left trim, EOS) gives the ids the learned
  judges compute at rollout time with the sentencepiece library (oracles/learned.tokenize), and a scorer trains
  from the task by name."""
  from mtpo_jax.data import task_data
  from mtpo_jax.training.pair_sources import judged_pairs
  from mtpo_tasks.text_tasks import register_pair_task
  vocab = project_vocabulary()
  pairs = judged_pairs(12, 0, "train")
  rows = st.pair_examples(pairs, vocab, 96, kind)
  name = register_pair_task(f"test_{kind}_pairs", lambda split: rows, st.PAIR_TEXT_KEYS[kind])
  # Rendered for 96 tokens, read at 64: the reader's left trim cuts where learned.tokenize cuts.
  got = st.scorer_arrays(kind, task_data.read_padded(name, "train", {"inputs": 64}))
  a, b, p = zip(*pairs)
  if kind == "reward":
    expected = {"ids_a": learned.tokenize(learned.reward_model_inputs(a, vocab, 96), vocab, 64),
                "ids_b": learned.tokenize(learned.reward_model_inputs(b, vocab, 96), vocab, 64)}
  else:  # rows 2i = (a, b) -> p and 2i + 1 = (b, a) -> 1 - p
    firsts, seconds = [x for pair in zip(a, b) for x in pair], [x for pair in zip(b, a) for x in pair]
    expected = {"ids": learned.tokenize(learned.preference_model_inputs(firsts, seconds, vocab, 96), vocab, 64)}
  expected["label"] = np.asarray([x for q in p for x in ((q,) if kind == "reward" else (q, 1 - q))], np.float32)
  assert got.keys() == expected.keys()
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key])
  assert any(ids[-1] != 0 for ids in next(v for k, v in got.items() if k != "label"))  # some rows were cut
  out = st.train_scorer(str(tmp_path), tiny_config(3072, layers=1), scorer=st.ScorerSpec(kind, architecture="joint"),
                        optimizer=make_optimizer("adamw", learning_rate=1e-3), mixture_or_task_name=name,
                        task_feature_lengths={"inputs": 96},
                        loop=LoopSettings(num_steps=2, batch_size=8, log_every=1, eval_every=1000, save_every=2))
  assert np.isfinite(out["loss"]) and np.isfinite(out["eval_loss"])
  assert json.load(open(tmp_path / learned.SCORER_FILE))["vocab_path"].endswith("dialogue_spm.model")


@pytest.fixture(scope="module")
def education():
  records = generator.generate(4, 7, "eval")
  alts = [generator.replay(r, f"t:{i}") for i, r in enumerate(records)]
  a = [record_to_conversation(r, f"c{i}") for i, r in enumerate(records)]
  b = [record_to_conversation(r, f"c{i}") for i, r in enumerate(alts)]
  vocab = project_vocabulary()
  config = SMALL.replace(vocab_size=3072)
  return records, alts, a, b, vocab, config, T5Value(config), _params(config, seed=3)


def test_rendering_is_the_training_data_format(education):
  records, alts, a, b, vocab, *_ = education
  count = learned.token_counter(vocab)
  for length in (10**6, 384):
    text = learned.preference_model_inputs(a[:1], b[:1], vocab, length)[0]
    assert text == ex.conversation_pair_example(records[0], alts[0], 0.5, length - learned.EOS_RESERVE, count)["inputs"]
    assert "\nTeacher: " in text and "\nB:\n" in text
    text = learned.reward_model_inputs(a[:1], vocab, length)[0]
    fmt_text = fmt.conversation_input("topic: " + records[0]["background_info"]["topic"], ex.record_turns(records[0]),
                                      length - learned.EOS_RESERVE, count)[0]
    assert text == fmt_text
  assert "[earlier turns omitted]" in text and len(vocab.encode(text)) <= 384 - learned.EOS_RESERVE


def test_learned_judges_are_exactly_antisymmetric(education):
  records, alts, a, b, vocab, config, model, params = education
  judge = learned.LearnedPreferenceJudge(config, params, vocab, input_length=256, max_batch=8)
  p_ab, p_ba = judge.preference(a, b), judge.preference(b, a)
  np.testing.assert_array_equal(p_ab + p_ba, np.ones(len(a)))
  np.testing.assert_array_equal(judge.preference(a, a), np.full(len(a), 0.5))
  raw = judge.raw_preference(a, b) + judge.raw_preference(b, a)
  assert np.abs(raw - 1).max() > 1e-4  # the model alone is not antisymmetric; symmetrising makes it so
  np.testing.assert_allclose(p_ab, 0.5 * (judge.raw_preference(a, b) + 1 - judge.raw_preference(b, a)), atol=1e-12)
  # the judge scores what the trainer trains on: the eval step's probability on the training arrays
  arrays = st.preference_arrays(list(zip(a, b, [0.5] * len(a))), vocab, 256)
  ev = jax.jit(functools.partial(steps.preference_model_eval_step, model=model))(params, arrays)
  np.testing.assert_allclose(np.asarray(ev["probability"])[0::2], judge.raw_preference(a, b), atol=1e-5)

  rm = learned.LearnedRewardJudge(config, params, vocab, input_length=256)
  r = rm.rewards(a + b)
  np.testing.assert_allclose(rm.preference(a, b), 1 / (1 + np.exp(-(r[:4] - r[4:]))), rtol=1e-12)
  np.testing.assert_array_equal(rm.preference(a, b) + rm.preference(b, a), np.ones(len(a)))
  np.testing.assert_array_equal(rm.preference(a, a), np.full(len(a), 0.5))
  with pytest.raises(ValueError, match="different contexts"):
    rm.preference(a[:2], b[1:3])


def test_backbone_initialises_from_a_policy_or_scorer_checkpoint(setup, tmp_path):
  backbone = jax.tree.map(lambda v: v + 1.0, setup["params"]["backbone"])  # a T5 policy's parameters
  for name, params in (("sft", backbone), ("scorer", {**setup["params"], "backbone": backbone})):
    ckpt = Checkpointer(str(tmp_path / name), save_every=1)
    ckpt.save(1, TrainState.create(params, optax.sgd(0.1), jax.random.PRNGKey(0)), {"data_position": 1}, force=True)
    ckpt.close()
  tx = optax.sgd(1e-3)
  spec = partitioning.MeshSpec(data=4, fsdp=2)
  partitioner = partitioning.Partitioner(partitioning.make_mesh(spec), spec.rules)
  layout = st._state_layout(T5Value(SMALL), tx, 8, 0, partitioner)
  for name in ("sft", "scorer"):
    state = st._fresh_state(layout, 0, partitioner, str(tmp_path / name))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params["backbone"]), jax.device_get(backbone))
    assert not np.any(np.asarray(state.params["value_head"]))  # the head is new (zeros)
  with pytest.raises(ValueError, match="does not match"):
    bigger = st._state_layout(T5Value(SMALL.replace(d_model=64)), tx, 8, 0, partitioner)
    st._fresh_state(bigger, 0, partitioner, str(tmp_path / "sft"))


N = 2
ARGS = ["--gin_file=experiments/preference_model_tiny.gin", "--gin_file=meshes/cpu.gin",
        "--gin.T5Config.d_model=32", "--gin.T5Config.d_ff=64", "--gin.T5Config.num_encoder_layers=1",
        "--gin.T5Config.num_decoder_layers=1", "--gin.LoopSettings.batch_size=8",
        "--gin.train_scorer.task_feature_lengths={'inputs': 96}", "--gin.PairData.num_train=8",
        "--gin.PairData.num_eval=3", f"--gin.LoopSettings.save_every={N}",
        "--gin.LoopSettings.log_every=1", "--gin.LoopSettings.eval_every=1000",
        "--gin.ScorerSpec.architecture='joint'"]


def test_preference_model_gin_run_reports_and_resumes(tmp_path):
  d = str(tmp_path / "pm")
  main.run(ARGS + [f"--gin.MODEL_DIR='{d}'", f"--gin.LoopSettings.num_steps={N}"])
  first = json.load(open(os.path.join(d, "eval_report.json")))
  assert first["step"] == N
  main.run(ARGS + [f"--gin.MODEL_DIR='{d}'", f"--gin.LoopSettings.num_steps={2 * N}", "--allow_config_change"])
  with open(os.path.join(d, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows if "train/loss" in r] == list(range(1, 2 * N + 1))  # resumed, not restarted
  assert all(np.isfinite(r[k]) for r in rows for k in ("train/grad_norm", "train/update_norm") if k in r)
  assert "LoopSettings.num_steps = 4" in open(os.path.join(d, "operative_config.gin")).read()
  report = json.load(open(os.path.join(d, "eval_report.json")))
  assert report["kind"] == "preference" and report["step"] == 2 * N and report["examples"] == 6  # both orders
  assert 0 <= report["accuracy"] <= 1 and 0 <= report["ece"] <= 1 and len(report["reliability"]) == 10
  assert sum(r["count"] for r in report["reliability"]) == 6
  assert "accuracy" in report["symmetrized"] and report["antisymmetry_gap"] >= 0
  # the run directory loads as a judge
  judge = learned.LearnedPreferenceJudge.from_checkpoint(d)
  records = generator.generate(2, 0, "eval")
  convs = [record_to_conversation(r, "x") for r in records]
  p = judge.preference(convs[:1], [record_to_conversation(records[1], "x")])
  np.testing.assert_array_equal(p + judge.preference(convs[1:], convs[:1]), [1.0])
  with pytest.raises(ValueError, match="preference model, not a reward"):
    learned.LearnedRewardJudge.from_checkpoint(d)


def test_siamese_pair_head_is_antisymmetric_and_fits_an_intransitive_cycle():
  """Rock-paper-scissors over three feature vectors: no Bradley-Terry reward ranks a 3-cycle (its best accuracy is
  2/3), while the siamese pair head (models/preference.py) fits all three preferences."""
  from mtpo_jax.models.preference import pair_logit
  feats = jnp.eye(3, 8)
  i, j = jnp.array([0, 1, 2]), jnp.array([1, 2, 0])  # 0 > 1, 1 > 2, 2 > 0
  head = {"pair_in": jax.random.normal(jax.random.PRNGKey(0), (24, 16)) * 0.3, "pair_bias": jnp.zeros(16),
          "pair_out": jnp.zeros(16)}
  loss = lambda h: -jax.nn.log_sigmoid(pair_logit(h, feats[i], feats[j])).mean()
  tx = optax.adam(0.05)
  opt = tx.init(head)
  for _ in range(300):
    g = jax.grad(loss)(head)
    upd, opt = tx.update(g, opt)
    head = optax.apply_updates(head, upd)
  p = jax.nn.sigmoid(pair_logit(head, feats[i], feats[j]))
  assert (p > 0.9).all()  # every edge of the cycle, which no BT reward can order
  np.testing.assert_array_equal(pair_logit(head, feats[j], feats[i]), -pair_logit(head, feats[i], feats[j]))
  np.testing.assert_array_equal(pair_logit(head, feats, feats), np.zeros(3))


def test_siamese_preference_model_trains_and_judges(tmp_path):
  d = str(tmp_path / "pm_siamese")
  args = [a for a in ARGS if "architecture" not in a]
  main.run(args + [f"--gin.MODEL_DIR='{d}'", "--gin.LoopSettings.num_steps=2",
                   "--gin.ScorerSpec.architecture='siamese'"])
  report = json.load(open(os.path.join(d, "eval_report.json")))
  assert report["kind"] == "pair_preference" and report["examples"] == 3  # one order per pair
  judge = learned.load_preference_judge(d)
  assert isinstance(judge, learned.LearnedPairPreferenceJudge)
  records = generator.generate(3, 0, "eval")
  a = [record_to_conversation(r, "x") for r in records]
  b = [record_to_conversation(generator.replay(r, f"k{i}"), "x") for i, r in enumerate(records)]
  np.testing.assert_array_equal(judge.preference(a, b) + judge.preference(b, a), np.ones(3))
  np.testing.assert_array_equal(judge.preference(a, a), np.full(3, 0.5))
  # the judge's probabilities are the trained model's forward on the same inputs
  params = load_params(os.path.join(d, "checkpoints"))
  from mtpo_jax.models.preference import T5PairPreference
  cfg = learned.config_from_json(learned.read_scorer_file(d)["model_config"])
  arrays = st.reward_arrays(list(zip(a, b, [0.5] * 3)), judge._scorer.vocab, 96)
  logit = T5PairPreference(cfg).apply({"params": params}, arrays["ids_a"], arrays["ids_b"])
  np.testing.assert_allclose(judge.preference(a, b), jax.nn.sigmoid(logit), atol=1e-5)
