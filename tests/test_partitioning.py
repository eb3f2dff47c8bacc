"""Logical-axis partitioning: every parameter is named, and a train step is the same on every mesh."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from mtpo_jax import partitioning
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.testing import tiny_config
from mtpo_jax.training import optimizers, sft
from mtpo_jax.training.sft_trainer import build_train_state_fns

CONFIG = tiny_config(128, d_ff=128, num_heads=8, relative_attention_num_buckets=8)
MESHES = [(1, 1, 1), (8, 1, 1), (2, 2, 2), (1, 1, 8)]


def _batch(seed=0, b=8, s=12, t=10):
  rs = np.random.RandomState(seed)
  tgt = rs.randint(2, CONFIG.vocab_size, (b, t)).astype(np.int32)
  tgt[:, -2:] = 0
  return {"encoder_input_tokens": rs.randint(2, CONFIG.vocab_size, (b, s)).astype(np.int32),
          "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), tgt[:, :-1]], 1),
          "decoder_target_tokens": tgt, "decoder_loss_weights": (tgt > 0).astype(np.float32)}


@pytest.mark.parametrize("module", [T5, T5Value])
def test_every_parameter_has_logical_names(module):
  model = module(CONFIG)
  args = (jnp.ones((1, 4), jnp.int32),) if module is T5Value else (jnp.ones((1, 4), jnp.int32),) * 2
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args)["params"]
  specs = partitioning.logical_param_specs(boxed)
  leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
  assert len(leaves) == len(jax.tree.leaves(nn.unbox(boxed)))
  with pytest.raises(ValueError, match="without logical axis names"):
    partitioning.logical_param_specs({"w": jax.ShapeDtypeStruct((2, 2), jnp.float32)})


def test_rules_resolve_conflicts_and_shard_params():
  mesh = partitioning.make_mesh(partitioning.MeshSpec(data=2, fsdp=2, model=2))
  part = partitioning.Partitioner(mesh)
  assert part.sharding(("batch", "length", "embed")).spec == P(("data", "fsdp"), None, None)
  assert part.sharding(("embed", "mlp")).spec == P("fsdp", "model")
  assert part.sharding(("vocab", "embed")).spec == P("model", "fsdp")


def test_mesh_spec_errors_are_clear():
  with pytest.raises(ValueError, match="needs 12 devices"):
    partitioning.MeshSpec(data=3, fsdp=2, model=2).shape(8)
  with pytest.raises(ValueError, match="at most one"):
    partitioning.MeshSpec(data=-1, fsdp=-1).shape(8)
  assert partitioning.MeshSpec(data=-1, model=2).shape(8) == (4, 1, 2)


def _run_step(mesh_shape):
  """One SGD step of the SFT loss on the given mesh (None: plain jit on one device, no mesh).

  SGD with a large rate makes the parameter comparison a comparison of gradients. Adam-style optimizers
  divide by sqrt(second moment), which turns reduction-order rounding (1e-10) on near-zero gradients into
  visible parameter differences (~1e-5 of a step) on *any* change of reduction order, sharded or not.
  """
  model = T5(CONFIG)
  tx, schedule = optimizers.make_optimizer("sgd", learning_rate=0.5, grad_clip_norm=None)
  init_fn, specs = build_train_state_fns(model, tx, 12, 10, seed=0)
  step = functools.partial(sft.sft_train_step, model=model, tx=tx, schedule=schedule)
  batch = _batch()
  if mesh_shape is None:
    state = jax.jit(init_fn)(jax.random.PRNGKey(0))
    new_state, metrics = jax.jit(step)(state, {k: jnp.asarray(v) for k, v in batch.items()})
  else:
    d, f, m = mesh_shape
    spec = partitioning.MeshSpec(data=d, fsdp=f, model=m)
    mesh = partitioning.make_mesh(spec, jax.devices()[: d * f * m])
    part = partitioning.Partitioner(mesh)
    state, state_sh = part.init_state(init_fn, jax.random.PRNGKey(0), specs)
    batch_sh = part.batch_shardings(batch)
    jitted = part.jit(step, (state_sh, batch_sh), (state_sh, part.replicated), donate_argnums=0)
    new_state, metrics = jitted(state, part.put_batch(batch))
    if d * f * m > 1:  # the state really is distributed as the rules say
      q = new_state.params["encoder_layer_0"]["attention"]["query"]  # [embed, heads, kv]
      assert q.sharding.spec == P("fsdp", "model", None)
      assert q.addressable_shards[0].data.shape == (CONFIG.d_model // f, CONFIG.num_heads // m, CONFIG.d_kv)
  return float(metrics["loss"]), jax.device_get(new_state.params)


@pytest.fixture(scope="module")
def reference():
  return _run_step(None)


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda s: "x".join(map(str, s)))
def test_sharded_step_equals_single_device(reference, mesh_shape):
  ref_loss, ref_params = reference
  loss, params = _run_step(mesh_shape)
  diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                                       params, ref_params))
  print(f"mesh {mesh_shape}: |loss diff| {abs(loss - ref_loss):.2e}, max |param diff| {max(diffs):.2e}")
  assert abs(loss - ref_loss) <= 1e-5
  assert max(diffs) <= 1e-5
  # And the step moved the parameters, so equality is not vacuous.
  init_fn, _ = build_train_state_fns(T5(CONFIG), optimizers.make_optimizer("sgd")[0], 12, 10, 0)
  init = jax.jit(init_fn)(jax.random.PRNGKey(0)).params
  assert np.abs(np.asarray(params["token_embedder"]) - np.asarray(init["token_embedder"])).max() > 1e-3
