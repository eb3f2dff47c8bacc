"""The train state pytrees of every trainer, and the sharded init of the actor-critic pair (RL, Iterative PPO)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from mtpo_jax import partitioning
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value, value_params_from_policy
from mtpo_jax.rl.actor_critic import ActorCriticState


@flax.struct.dataclass
class TrainState:
  """step: [] int32; params: model parameters; opt_state: optax state; rng: [2] uint32 raw key.

  The dropout/sampling key of step t is fold_in(rng, t), so resuming at step t replays the same randomness.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array

  @classmethod
  def create(cls, params: Any, tx, rng: jax.Array) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng)

  def step_key(self) -> jax.Array:
    return jax.random.fold_in(self.rng, self.step)


def actor_critic_layout(policy: T5, value: T5Value, tx_p, tx_v, seed: int, input_length: int,
                        partitioner: partitioning.Partitioner, policy_params: Any = None):
  """(init(rng, policy_params=None) -> ActorCriticState, its abstract shape, its shardings); nothing is
  materialised (the ahead-of-time compiler builds its arguments from the last two)."""
  x = jnp.ones((1, input_length), jnp.int32)
  boxed = jax.eval_shape(policy.init, jax.random.PRNGKey(0), x, x)["params"]
  p_specs = partitioning.logical_param_specs(boxed)
  if policy_params is not None:  # against the configured model, before anything is traced with the checkpoint's
    partitioning.check_host_tree(policy_params, nn.unbox(boxed), "init_checkpoint's parameters do not match "
                                 "policy_config (different vocabulary size, widths or layers)")
  v_specs = partitioning.logical_param_specs(jax.eval_shape(value.init, jax.random.PRNGKey(0), x)["params"])

  def init(rng, pp=None):
    r_p, r_v, r_s = jax.random.split(rng, 3)
    pp = nn.unbox(policy.init(r_p, x, x)["params"]) if pp is None else pp
    vp = value_params_from_policy(nn.unbox(value.init(r_v, x)["params"]), pp)
    return ActorCriticState(TrainState.create(pp, tx_p, r_s), TrainState.create(vp, tx_v, r_s))

  key = jax.random.PRNGKey(seed)  # outside the mesh context: an eager op there fails on a compile-only mesh
  with partitioner.context():
    abstract = jax.eval_shape(init, key, policy_params)
    shardings = ActorCriticState(partitioner.state_shardings(abstract.policy, p_specs),
                                 partitioner.state_shardings(abstract.value, v_specs))
  return init, abstract, shardings


def init_actor_critic_state(policy: T5, value: T5Value, policy_params: Any, tx_p, tx_v, seed: int,
                            input_length: int, partitioner: partitioning.Partitioner):
  """(ActorCriticState, its shardings, its abstract shape), initialised sharded: the policy from `policy_params`
  (host arrays, placed shard by shard; random if None), the value network from the policy backbone."""
  init, abstract, shardings = actor_critic_layout(policy, value, tx_p, tx_v, seed, input_length, partitioner,
                                                  policy_params)
  state = partitioner.init_sharded(init, jax.random.PRNGKey(seed), shardings, policy_params,
                                   None if policy_params is None else shardings.policy.params)
  return state, shardings, abstract
