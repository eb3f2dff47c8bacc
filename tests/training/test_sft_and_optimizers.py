"""SFT loss and optimizer schedules against hand computation; NaN losses stop the run and keep checkpoints."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax.data import toy_teacher
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value, value_params_from_policy
from mtpo_jax.testing import tiny_config
from mtpo_jax.training import optimizers
from mtpo_jax.checkpoints import load_params
from mtpo_jax.training.loop import LoopSettings
from mtpo_jax.training.sft import token_cross_entropy
from mtpo_jax.training.sft_trainer import train_sft
from mtpo_tasks.text_tasks import toy_teacher_task


def test_token_cross_entropy_by_hand():
  logits = jnp.array([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]])
  targets = jnp.array([[0, 2], [1, 0]])
  weights = jnp.array([[1.0, 1.0], [1.0, 0.0]])
  # -log softmax by hand: row (2,0,0)->target 0: log(e^2+2)-2; (0,1,0)->2: log(2+e)-0; (0,0,0)->1: log 3.
  expected = (np.log(np.e ** 2 + 2) - 2 + np.log(2 + np.e) + np.log(3)) / 3
  loss, acc = token_cross_entropy(logits, targets, weights)
  assert float(loss) == pytest.approx(expected, rel=1e-6)
  assert float(acc) == pytest.approx(1 / 3)  # only the first token's argmax is right


def test_schedules_by_hand():
  lin = optimizers.make_schedule(1.0, "linear", warmup_steps=10, total_steps=30)
  assert float(lin(5)) == pytest.approx(0.5) and float(lin(10)) == pytest.approx(1.0)
  assert float(lin(20)) == pytest.approx(0.5) and float(lin(30)) == pytest.approx(0.0)
  rs = optimizers.make_schedule(1.0, "rsqrt", warmup_steps=100)
  assert float(rs(100)) == pytest.approx(1.0) and float(rs(400)) == pytest.approx(0.5)  # T5: sqrt(warmup / step)
  cos = optimizers.make_schedule(2.0, "cosine", total_steps=100)
  assert float(cos(50)) == pytest.approx(1.0, abs=1e-6)
  with pytest.raises(ValueError, match="unknown schedule"):
    optimizers.make_schedule(1.0, "exponential")
  with pytest.raises(ValueError, match="unknown optimizer"):
    optimizers.make_optimizer("lion")


def test_adafactor_uses_decay_rate():
  tx, _ = optimizers.make_optimizer("adafactor", learning_rate=0.1, decay_rate=0.8, grad_clip_norm=None)
  p = {"w": jnp.ones((3,))}
  state = tx.init(p)
  g = {"w": jnp.array([1.0, 2.0, 3.0])}
  _, state = tx.update(g, state, p)
  v = [s for s in jax.tree.leaves(state) if getattr(s, "shape", None) == (3,)]
  # Adafactor's second moment after one step with decay_rate 0.8: beta2_1 = 1 - 1^-0.8 = 0, so v = g^2 + eps.
  assert any(np.allclose(np.asarray(x), np.array([1.0, 4.0, 9.0]), rtol=1e-5) for x in v)


def test_adafactor_follows_t5x_parameter_scaled_steps():
  # T5X Adafactor, first step on a vector (unfactored): v = g^2, u = g / sqrt(v) = sign(g) (RMS 1, so the update
  # clipping at 1 leaves it), scaled by max(1e-3, RMS(p)) = 2 and by -lr: [-0.2, 0.2, -0.2] by hand.
  p = {"w": jnp.full((3,), 2.0)}
  g = {"w": jnp.array([1.0, -2.0, 3.0])}
  tx, _ = optimizers.make_optimizer("adafactor", learning_rate=0.1)
  u, _ = tx.update(g, tx.init(p), p)
  np.testing.assert_allclose(np.asarray(u["w"]), [-0.2, 0.2, -0.2], rtol=1e-5)
  # Without the parameter scale the step is lr itself; a tiny parameter is scaled by the 1e-3 floor.
  tx, _ = optimizers.make_optimizer("adafactor", learning_rate=0.1, multiply_by_parameter_scale=False)
  u, _ = tx.update(g, tx.init(p), p)
  np.testing.assert_allclose(np.asarray(u["w"]), [-0.1, 0.1, -0.1], rtol=1e-5)
  # momentum (T5X's beta1) keeps an exponential average of those updates, (1 - 0.9) x the step at step 1
  tx, _ = optimizers.make_optimizer("adafactor", learning_rate=0.1, momentum=0.9)
  u, _ = tx.update(g, tx.init(p), p)
  np.testing.assert_allclose(np.asarray(u["w"]), [-0.02, 0.02, -0.02], rtol=1e-5)
  small = {"w": jnp.full((3,), 1e-6)}
  tx, _ = optimizers.make_optimizer("adafactor", learning_rate=0.1)
  u, _ = tx.update(g, tx.init(small), small)
  np.testing.assert_allclose(np.asarray(u["w"]), [-1e-4, 1e-4, -1e-4], rtol=1e-5)


def test_no_gradient_clip_unless_asked():
  p = {"w": jnp.zeros((2,))}
  g = {"w": jnp.array([30.0, -40.0])}  # global norm 50
  tx, _ = optimizers.make_optimizer("sgd", learning_rate=1.0)
  np.testing.assert_allclose(np.asarray(tx.update(g, tx.init(p), p)[0]["w"]), [-30.0, 40.0])
  tx, _ = optimizers.make_optimizer("sgd", learning_rate=1.0, grad_clip_norm=5.0)
  np.testing.assert_allclose(np.asarray(tx.update(g, tx.init(p), p)[0]["w"]), [-3.0, 4.0], rtol=1e-5)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = tiny_config(3072)
  # The rate turns NaN from step 3 on, so step 4's loss is NaN; checkpoints are due every 2 steps.
  schedule = lambda step: jnp.where(step < 3, 1e-3, jnp.nan)
  tx = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(schedule))
  with pytest.raises(FloatingPointError, match="non-finite loss.*step 4.*last good checkpoint is step 2"):
    train_sft(str(tmp_path), config, toy_teacher_task(64, 8), {"inputs": 16, "targets": 16},
              optimizer=(tx, schedule),
              loop=LoopSettings(num_steps=10, batch_size=8, log_every=1, save_every=2, eval_every=100),
              eval_batches=1)
  params = load_params(os.path.join(tmp_path, "checkpoints"))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_value_model_starts_from_policy():
  config = tiny_config(d_model=16, d_kv=4, d_ff=32)
  ids = jnp.array([[5, 6, 7, 1, 0], [9, 1, 0, 0, 0]])
  policy = T5(config).init(jax.random.PRNGKey(0), ids, ids)["params"]
  value_model = T5Value(config)
  vp = value_model.init(jax.random.PRNGKey(1), ids)["params"]
  vp = value_params_from_policy(jax.tree.map(lambda x: x, vp), policy)
  vp["value_head"] = jnp.ones((16,))
  values = value_model.apply({"params": vp}, ids)
  assert values.shape == (2,) and values.dtype == jnp.float32
  # By construction the value is the sum of the policy decoder's first hidden state.
  enc = T5(config).apply({"params": policy}, ids, method=T5.encode)
  hidden = T5(config).apply({"params": policy}, enc, (ids != 0).astype(jnp.int32), jnp.zeros((2, 1), jnp.int32),
                            method=T5.decoder_hidden)
  np.testing.assert_allclose(values, hidden[:, 0].sum(-1), rtol=1e-5)
  with pytest.raises(ValueError, match="do not match"):
    value_params_from_policy(vp, {"x": jnp.ones(1)})


def test_vocabulary_round_trip_and_out_of_range_ids(tmp_path):
  from mtpo_jax.text.vocabulary import Vocabulary, train_sentencepiece
  texts = [t for pair in toy_teacher.generate(200, 0) for t in pair]
  vocab = Vocabulary(train_sentencepiece(texts, str(tmp_path / "spm"), vocab_size=300))
  ids = vocab.encode("let me explain photosynthesis.")
  assert vocab.decode(ids + [1, 7, 8]) == "let me explain photosynthesis."  # stops at EOS
  assert "⁇" in vocab.decode([vocab.vocab_size + 5])  # a padded-vocab id is unk, not a crash
  again = Vocabulary(train_sentencepiece(texts, str(tmp_path / "spm2"), vocab_size=300))
  assert open(vocab.model_path, "rb").read() == open(again.model_path, "rb").read()  # deterministic
