"""The memory knobs the scaling table can use change memory, not results: rematerialisation policies give the
plain step's loss and gradients, bf16 compute stays within bf16 tolerance of float32, and Adafactor's factored
state is O(rows + columns) per matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax.models.config import REMAT_POLICIES, T5Config
from mtpo_jax.models.decoding import SamplingConfig, sample
from mtpo_jax.models.t5 import T5
from mtpo_jax.training import optimizers, sft
from mtpo_jax.training.sft_trainer import build_train_state_fns


def _batch(config, b=4, s=12, t=6):
  rng = np.random.default_rng(0)
  inputs = jnp.asarray(rng.integers(2, config.vocab_size, (b, s)), jnp.int32)
  targets = jnp.asarray(rng.integers(2, config.vocab_size, (b, t)), jnp.int32)
  dec_in = jnp.concatenate([jnp.zeros((b, 1), jnp.int32), targets[:, :-1]], axis=1)
  return {"encoder_input_tokens": inputs, "decoder_input_tokens": dec_in, "decoder_target_tokens": targets,
          "decoder_loss_weights": jnp.ones((b, t), jnp.float32)}


def _step(config, tx_name="adamw"):
  """(loss, new parameters) of one SFT step from the same initial state (dropout on, so remat must replay it)."""
  tx, schedule = optimizers.make_optimizer(tx_name, 1e-3)
  init_fn, _ = build_train_state_fns(T5(config), tx, 12, 6, 0)
  state = init_fn(jax.random.PRNGKey(0))
  new, metrics = jax.jit(lambda s, b: sft.sft_train_step(s, b, model=T5(config), tx=tx, schedule=schedule))(
      state, _batch(config))
  return float(metrics["loss"]), new.params


@pytest.mark.parametrize("policy", [p for p in REMAT_POLICIES if p != "none"])
def test_remat_policies_give_the_plain_step(policy):
  config = T5Config(dropout_rate=0.1)
  loss, params = _step(config)
  loss_r, params_r = _step(config.replace(remat_policy=policy))
  assert loss_r == pytest.approx(loss, rel=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), params_r, params)
  # sampling passes through the rematerialised layers too (with a cache and keyword arguments)
  x = _batch(config)["encoder_input_tokens"]
  out = [sample(T5(c), params, x, jax.random.PRNGKey(1), SamplingConfig(max_new_tokens=5)).tokens
         for c in (config, config.replace(remat_policy=policy))]
  np.testing.assert_array_equal(out[0], out[1])


def test_unknown_remat_policy_is_refused():
  with pytest.raises(ValueError, match="remat_policy"):
    T5Config(remat_policy="everything")


def test_bf16_compute_stays_near_float32():
  config = T5Config(dropout_rate=0.0)
  loss, _ = _step(config)
  loss_bf16, _ = _step(config.replace(dtype=jnp.bfloat16))
  # bf16 has an 8-bit mantissa (relative precision 2**-8): the loss of a freshly initialised model agrees to
  # about a percent, and a wrong cast (e.g. logits left in bf16 and softmaxed there) would not be this close
  assert loss_bf16 == pytest.approx(loss, rel=2e-2)
  assert loss_bf16 != loss  # the knob changed the arithmetic


def test_adafactor_state_is_factored_for_large_matrices():
  # a [512, 1024] matrix: AdamW keeps 2 x 524,288 floats; factored Adafactor keeps its row and column statistics
  params = {"w": jnp.zeros((512, 1024)), "b": jnp.zeros((1024,))}
  size = lambda tx: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tx.init(params)) if hasattr(a, "shape"))
  adamw = size(optimizers.make_optimizer("adamw", 1e-3)[0])
  adafactor = size(optimizers.make_optimizer("adafactor", 1e-3)[0])
  assert adamw >= 2 * (512 * 1024 + 1024)
  assert adafactor <= 512 + 1024 + 1024 + 16  # rows + columns of w, the full second moment of b, counters
  assert isinstance(optax.adafactor(1e-3), optax.GradientTransformation)
