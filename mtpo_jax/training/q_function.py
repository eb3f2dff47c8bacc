"""Policy evaluation for deep Iterative PPO (papers/digest.md B2 Observation 2, B3 line 5): Q_i fit by Monte-Carlo
regression on the rows of D_multi, and its held-out report.

Each agent turn of pi_i's rollouts is one example ((s_j, a_j), G_j): the input is `rl.ppo.q_input_ids` (the
policy's input for s_j followed by the sampled response, the same function PPO scores with) and the target is
the discounted return G_j = sum_k gamma^k r_{j+k} over the conversation's remaining agent turns (terminal reward:
G_j = gamma^(H-j) R). A slice of the conversations (never of rows, so no conversation straddles the split) is
held out to report the fit's MSE and explained variance.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import partitioning
from mtpo_jax.models.value import T5Value, value_params_from_policy
from mtpo_jax.rl import advantages as adv
from mtpo_jax.rl import ppo
from mtpo_jax.checkpoints import Checkpointer, restore_target
from mtpo_jax.training.state import TrainState


def row_returns(rewards: np.ndarray, turn_mask: np.ndarray, turn_rows: np.ndarray, num_rows: int,
                gamma: float) -> np.ndarray:
  """Monte-Carlo return G of every row [N] from turn rewards [C, T] (rl.advantages.discounted_returns)."""
  g = np.asarray(adv.discounted_returns(jnp.asarray(rewards), jnp.asarray(turn_mask), gamma))
  out = np.zeros((num_rows,), np.float32)
  real = np.asarray(turn_mask) > 0
  out[np.asarray(turn_rows)[real]] = g[real]
  return out


def heldout_conversations(num: int, fraction: float, seed: int, iteration: int) -> np.ndarray:
  """[C] bool: round(fraction * C) conversations (at least 1 when fraction > 0), drawn from (seed, iteration)."""
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"q_holdout_fraction must be in [0, 1), got {fraction}")
  k = 0 if fraction == 0 else min(num - 1, max(1, int(round(fraction * num))))
  out = np.zeros((num,), bool)
  out[np.random.default_rng([seed, iteration, 11]).permutation(num)[:k]] = True
  return out


def epoch_rows(size: int, batch_size: int, seed: int, iteration: int, index: int) -> np.ndarray:
  """Rows of batch `index`: consecutive slices of per-epoch permutations, a pure function of its arguments."""
  positions = np.arange(index * batch_size, (index + 1) * batch_size)
  orders = {e: np.random.default_rng([seed, iteration, e]).permutation(size) for e in set(positions // size)}
  return np.array([orders[p // size][p % size] for p in positions])


def fit_report(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
  """MSE and explained variance 1 - Var[G - Q] / Var[G] (nan on an empty slice)."""
  if len(target) == 0:
    return {"mse": float("nan"), "ev": float("nan")}
  var = float(np.var(target))
  return {"mse": float(np.mean((pred - target) ** 2)),
          "ev": float(1.0 - np.var(target - pred) / var) if var > 1e-12 else float("nan")}


@dataclasses.dataclass(frozen=True)
class QTargets:
  """How returns become regression targets: target = (G - shift) / scale ("mse"; shift/scale = mean/std of the
  training returns when normalising, else 0/1) or G itself ("cross_entropy", which needs G in [0, 1])."""
  loss: str
  shift: float
  scale: float

  @classmethod
  def fit(cls, returns: np.ndarray, loss: str, normalize: bool) -> "QTargets":
    if loss not in ppo.Q_LOSSES:
      raise ValueError(f"unknown q_loss {loss!r}; expected one of {ppo.Q_LOSSES}")
    if loss == "cross_entropy":
      if normalize:
        raise ValueError("q_normalize_targets is for the mse loss; cross_entropy regresses returns in [0, 1]")
      if returns.min() < 0 or returns.max() > 1:
        raise ValueError(f"q_loss='cross_entropy' needs returns in [0, 1], got [{returns.min()}, {returns.max()}]")
    if not normalize:
      return cls(loss, 0.0, 1.0)
    return cls(loss, float(returns.mean()), float(max(returns.std(), 1e-6)))

  def targets(self, returns: np.ndarray) -> np.ndarray:
    return ((returns - self.shift) / self.scale).astype(np.float32)

  def values(self, raw: np.ndarray) -> np.ndarray:
    """Q in reward units (`rl.ppo.q_values` in numpy)."""
    return np.asarray(ppo.q_values(jnp.asarray(raw), self.loss, self.shift, self.scale))


class QFunction:
  """The stateful edge of Q fitting: sharded Q train state, the jitted fit step and forward, Q_i checkpoints."""

  def __init__(self, model: T5Value, tx: optax.GradientTransformation, partitioner: partitioning.Partitioner,
               input_length: int, batch_size: int, loss: str, seed: int):
    self.model, self.tx, self.partitioner, self.batch_size, self.seed = model, tx, partitioner, batch_size, seed
    dummy = jnp.ones((1, input_length), jnp.int32)
    specs = partitioning.logical_param_specs(jax.eval_shape(model.init, jax.random.PRNGKey(0), dummy)["params"])
    abstract_params = jax.eval_shape(lambda r: nn.unbox(model.init(r, dummy)["params"]), jax.random.PRNGKey(0))
    with partitioner.context():
      abstract = jax.eval_shape(lambda p: TrainState.create(p, tx, jax.random.PRNGKey(seed)), abstract_params)
    self.shardings = partitioner.state_shardings(abstract, specs)
    self.abstract_params = restore_target(abstract.params, self.shardings.params)
    sh = self.shardings
    self._create = partitioner.jit(lambda p: TrainState.create(p, tx, jax.random.PRNGKey(seed)),
                                   in_shardings=(sh.params,), out_shardings=sh)
    self._from_policy = partitioner.jit(
        lambda pp: value_params_from_policy(nn.unbox(model.init(jax.random.PRNGKey(0), dummy)["params"]), pp),
        in_shardings=None, out_shardings=sh.params)
    batch_sh = {"q_ids": partitioner.data_sharding(2), "target": partitioner.data_sharding(1)}
    self._step = partitioner.jit(functools.partial(ppo.q_fit_step, model=model, tx=tx, loss_kind=loss),
                                 in_shardings=(sh, batch_sh), out_shardings=(sh, partitioner.replicated),
                                 donate_argnums=0)
    self._forward = partitioner.jit(functools.partial(ppo.q_forward, model=model),
                                    in_shardings=(sh.params, partitioner.data_sharding(2)),
                                    out_shardings=partitioner.replicated)

  def params_from_policy(self, policy_params: Any) -> Any:
    """Q's parameters with the policy's backbone and a zero head (`value_params_from_policy`)."""
    return self._from_policy(policy_params)

  def predict(self, params: Any, q_ids: np.ndarray) -> np.ndarray:
    """Raw head outputs [N] in chunks of batch_size rows (the last chunk padded), one compiled shape."""
    out = []
    for lo in range(0, len(q_ids), self.batch_size):
      rows = q_ids[lo:lo + self.batch_size]
      padded = np.zeros((self.batch_size, q_ids.shape[1]), np.int32)
      padded[:len(rows)] = rows
      ids = self.partitioner.put_batch({"q_ids": padded})["q_ids"]
      out.append(np.asarray(jax.device_get(self._forward(params, ids)))[:len(rows)])
    return np.concatenate(out) if out else np.zeros((0,), np.float32)

  def fit(self, params: Any, q_ids: np.ndarray, returns: np.ndarray, heldout: np.ndarray, targets: QTargets,
          num_steps: int, iteration: int) -> tuple[Any, dict[str, float]]:
    """`num_steps` steps from `params` (a fresh optimizer state) on the rows not held out; returns Q_i's params
    and the report: fit loss, MSE and explained variance on the held-out and training rows, before and after."""
    train = np.flatnonzero(~heldout)
    if not len(train):
      raise ValueError("no training rows for Q (every conversation is held out)")
    before = targets.values(self.predict(params, q_ids))
    state = self._create(params)
    target = targets.targets(returns)
    losses = []
    for step in range(num_steps):
      rows = train[epoch_rows(len(train), self.batch_size, self.seed, iteration, step)]
      batch = self.partitioner.put_batch({"q_ids": q_ids[rows], "target": target[rows]})
      state, metrics = self._step(state, batch)
      losses.append(float(jax.device_get(metrics["loss"])))
    after = targets.values(self.predict(state.params, q_ids))
    report = {"q_loss": float(np.mean(losses[-max(1, num_steps // 10):])) if losses else float("nan"),
              "q_loss_first": losses[0] if losses else float("nan"),
              "q_return_mean": float(returns.mean()), "q_return_std": float(returns.std()),
              "q_prediction_mean": float(after.mean()), "q_target_shift": targets.shift,
              "q_target_scale": targets.scale}
    for name, rows in (("heldout", heldout), ("train", ~heldout)):
      for k, v in fit_report(after[rows], returns[rows]).items():
        report[f"q_{name}_{k}"] = v
      for k, v in fit_report(before[rows], returns[rows]).items():
        report[f"q_{name}_{k}_before"] = v
    return state.params, report

  # Q_i CHECKPOINTS (params and the target transform; no optimizer state)

  def save(self, directory: str, params: Any, targets: QTargets, meta: dict[str, Any]) -> None:
    ckpt = Checkpointer(directory, save_every=1, keep=1)
    latest = ckpt.latest_step()  # a fit whose report was never written: replace it (keep=1 drops the old one)
    ckpt.save(0 if latest is None else latest + 1, {"params": params},
              {**meta, "loss": targets.loss, "shift": targets.shift, "scale": targets.scale}, force=True)
    ckpt.close()

  def restore(self, directory: str) -> tuple[Any, QTargets, dict[str, Any]] | None:
    """(params, target transform, meta) of a saved Q_i, or None when there is none."""
    if not os.path.isdir(directory):
      return None
    ckpt = Checkpointer(directory, save_every=1, keep=1)
    try:
      if ckpt.latest_step() is None:
        return None
      restored, meta = ckpt.restore({"params": self.abstract_params})
    finally:
      ckpt.close()
    return restored["params"], QTargets(meta["loss"], float(meta["shift"]), float(meta["scale"])), meta
