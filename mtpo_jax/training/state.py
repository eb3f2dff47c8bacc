"""The train state pytree shared by every trainer."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


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
