"""The deep multi-turn actor-critic step shared by MTPO, MTPO-tau and multi-turn RLHF (papers digest A7).

One pure function `actor_critic_step(state, batch, frozen, *, hp, policy, value, policy_tx, value_tx)`:

1. the critic V_phi(x_h) is evaluated on every agent-turn state (the encoder ids the policy saw);
2. turn-level GAE over each conversation's agent turns gives advantages and value targets; advantages are
   batch-normalised;
3. critic: (V_hat - V_phi)^2;  actor: -A_hat * log pi_theta(y_h|x_h) + alpha * KL(pi_theta || mu)[x_h], with the
   turn's log-probability the sum of its token log-probs and the KL exact per token from both models' logits;
4. the actor is updated only from step `policy_delay` on (Table 4's "policy learning delay"); the critic always.

The algorithms differ only in the rewards the caller puts in `batch["rewards"]` (MTPO: p and 1 - p of a
judged pair on the last turn; RLHF: a reward model's score) and in how the conversations were sampled
(MTPO-tau: from the geometric mixture). Row layout: N agent turns (rows) across C conversations of up to T
agent turns; `turn_rows [C, T]` maps each conversation turn to its row (-1 = padding).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax.models.t5 import T5, shift_right
from mtpo_jax.models.value import T5Value
from mtpo_jax.rl import advantages as adv
from mtpo_jax.rl import kl, losses


@dataclasses.dataclass(frozen=True)
class ActorCriticHParams:
  """alpha: KL coefficient to mu; gamma/lam: GAE over turns; policy_delay: critic-only steps first.

  kl_in_reward: subtract alpha * KL(pi||mu)[x_h] from each turn's reward before GAE (rl/advantages.
  regularised_rewards), so the advantages and value targets are the regularised A_hat_alpha, V_hat_alpha of
  digest A2/A7. With the loss's own alpha * KL term this is an unbiased estimate of the exact gradient of the
  regularised objective (tests/rl/test_regularised_gradient.py). The paper does not say whether its deep
  variant puts the KL into the rewards ([NOT FOUND]); default on, and off reproduces the loss-only estimator,
  whose gradient ignores the KL the current turn causes at later turns and tokens (docs/algorithms.md).
  microbatch_rows: run the networks on this many rows at a time and accumulate the gradients (0: all rows at
  once). The update is the same full-batch step up to float summation order; activation memory falls from the
  whole batch's (all turns of all conversations, e.g. 16 x 2 x 10 rows) to one microbatch's. Must divide the
  padded row count; microbatch j takes rows j, j + k, j + 2k, ... so each spans every data shard.
  tau: the rollouts' mixture weight of mu (digest A4; Table 4 lists it beside alpha): MTPO-tau and Nash-MD sample
  from (1 - tau) log pi_theta + tau log mu; 0 samples pi_theta itself. The step itself does not read it.
  length_buckets: the update runs at the smallest of this many encoder lengths that holds the batch
  (training/rl_trainer.encoder_length_bucket; 1 = always the full input length); the step does not read it.
  """
  alpha: float = 0.005
  gamma: float = 1.0
  lam: float = 0.95
  policy_delay: int = 1000
  normalize_advantages: bool = True
  kl_in_reward: bool = True
  microbatch_rows: int = 0
  tau: float = 0.0
  length_buckets: int = 4


@flax.struct.dataclass
class ActorCriticState:
  """Two train states (training/state.py TrainState: step, params, opt_state, rng), one per network."""
  policy: Any
  value: Any

  @property
  def step(self) -> jax.Array:
    return self.policy.step


def rows_to_turns(x: jax.Array, turn_rows: jax.Array, turn_mask: jax.Array) -> jax.Array:
  """Per-row values [N] -> per-conversation-turn [C, T] (0 at padding)."""
  return x[jnp.maximum(turn_rows, 0)] * turn_mask


def turns_to_rows(x: jax.Array, turn_rows: jax.Array, turn_mask: jax.Array, num_rows: int) -> jax.Array:
  """Per-conversation-turn [C, T] -> per-row [N] (rows not referenced stay 0)."""
  return jnp.zeros((num_rows,), x.dtype).at[jnp.maximum(turn_rows, 0)].add(x * turn_mask)


def policy_turn_terms(params: Any, ref_params: Any, batch: dict[str, jax.Array], policy: T5,
                      reference: T5 | None = None) -> tuple[jax.Array, jax.Array]:
  """(log pi_theta(y|x) [N], exact KL(pi_theta || mu)[x] along the sampled turn [N])."""
  reference = reference or policy
  dec_in = shift_right(batch["decoder_ids"], policy.config.decoder_start_token_id)
  logits = policy.apply({"params": params}, batch["encoder_ids"], dec_in)
  ref_logits = jax.lax.stop_gradient(reference.apply({"params": ref_params}, batch["encoder_ids"], dec_in))
  mask = batch["token_mask"]
  turn_logp = (kl.token_logprobs(logits, batch["decoder_ids"]) * mask).sum(-1)
  return turn_logp, kl.sequence_kl(logits, ref_logits, mask)


def _chunks(tree: Any, k: int) -> Any:
  """Rows [N, ...] -> [k, N / k, ...] with chunk j = rows j, j + k, j + 2k, ... (strided, so every chunk
  spans every shard of a row-sharded batch)."""
  return jax.tree.map(lambda x: jnp.swapaxes(x.reshape((x.shape[0] // k, k) + x.shape[1:]), 0, 1), tree)


def microbatch_order(num_rows: int, microbatch_rows: int) -> np.ndarray:
  """[N] int positions: row r of a batch goes to position (r // mb) + (r % mb) * k (k = N / mb microbatches), so
  the strided microbatch j of `_chunks` holds rows j*mb .. (j+1)*mb - 1. Real rows come first in a padded batch,
  so they fill the leading microbatches and the trailing all-padding ones are skipped by the step."""
  mb = microbatch_rows if 0 < microbatch_rows < num_rows else num_rows
  if num_rows % mb:
    raise ValueError(f"microbatch_rows = {mb} does not divide the {num_rows} rows of the batch")
  r = np.arange(num_rows)
  return (r // mb + (r % mb) * (num_rows // mb)).astype(np.int32)


def _unchunk(x: jax.Array) -> jax.Array:
  """Inverse of `_chunks` for one array: [k, N / k, ...] -> [N, ...]."""
  return jnp.swapaxes(x, 0, 1).reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def _accumulate(loss_fn, params: Any, chunked: Any, k: int):
  """Sum over the k chunks of value_and_grad(loss_fn)(params, chunk) (loss_fn returns (loss, aux [n, ...]));
  returns (loss, aux [N, ...] in row order, grads). One chunk at a time (lax.scan), so only its activations live;
  a chunk with no real row (mask all 0) contributes exactly 0 and is not computed (lax.cond)."""
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  first = jax.tree.map(lambda x: x[0], chunked)
  (_, aux_shape), _ = jax.eval_shape(grad_fn, params, first)

  def body(carry, chunk):
    loss, grads = carry
    compute = lambda c: grad_fn(params, c)
    skip = lambda c: ((jnp.zeros((), jnp.float32), jnp.zeros(aux_shape.shape, aux_shape.dtype)),
                      jax.tree.map(jnp.zeros_like, params))
    (l, aux), g = jax.lax.cond(chunk["mask"].sum() > 0, compute, skip, chunk)
    return (loss + l, jax.tree.map(jnp.add, grads, g)), aux

  zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
  (loss, grads), aux = jax.lax.scan(body, zero, chunked)
  return loss, jax.tree.map(_unchunk, aux), grads


def actor_critic_step(state: ActorCriticState, batch: dict[str, jax.Array], frozen: dict[str, Any], *,
                      hp: ActorCriticHParams, policy: T5, value: T5Value, policy_tx: optax.GradientTransformation,
                      value_tx: optax.GradientTransformation) -> tuple[ActorCriticState, dict[str, jax.Array]]:
  """batch: encoder_ids [N, S], decoder_ids / token_mask [N, L], row_mask [N], turn_rows / turn_mask /
  rewards [C, T], optionally behaviour_logp [N] (the sampled turn's log-prob under the sampling policy).
  frozen: {"reference": mu's params}. Pure; jit with shardings and a donated state."""
  n = batch["encoder_ids"].shape[0]
  turn_rows, turn_mask = batch["turn_rows"], batch["turn_mask"].astype(jnp.float32)
  mb = hp.microbatch_rows if 0 < hp.microbatch_rows < n else n
  if n % mb:
    raise ValueError(f"microbatch_rows = {mb} does not divide the {n} rows of the batch")
  k = n // mb
  row_keys = ("encoder_ids", "decoder_ids", "token_mask")
  rows = {key: batch[key] for key in row_keys}

  # CRITIC ON EVERY STATE, THEN GAE OVER TURNS (forward passes only, one microbatch at a time)
  v_apply = lambda p, r: value.apply({"params": p}, r["encoder_ids"])
  rows_m = {**rows, "mask": batch["row_mask"]}
  v_chunk = lambda c: jax.lax.cond(c["mask"].sum() > 0, functools.partial(v_apply, state.value.params),
                                   lambda c: jnp.zeros(c["mask"].shape, jnp.float32), c)
  v_rows = _unchunk(jax.lax.map(v_chunk, _chunks(rows_m, k)))
  rewards = batch["rewards"]
  if hp.kl_in_reward:
    kl_chunk = lambda c: jax.lax.cond(
        c["mask"].sum() > 0, lambda c: policy_turn_terms(state.policy.params, frozen["reference"], c, policy)[1],
        lambda c: jnp.zeros(c["mask"].shape, jnp.float32), c)
    kl_now = _unchunk(jax.lax.map(kl_chunk, _chunks(rows_m, k)))
    rewards = adv.regularised_rewards(rewards, rows_to_turns(kl_now, turn_rows, turn_mask), turn_mask, hp.alpha)
  v_turns = rows_to_turns(jax.lax.stop_gradient(v_rows), turn_rows, turn_mask)
  advantages, targets = adv.turn_gae(rewards, v_turns, turn_mask, hp.gamma, hp.lam)
  if hp.normalize_advantages:
    advantages = adv.normalize(advantages, turn_mask)
  adv_rows = turns_to_rows(advantages, turn_rows, turn_mask, n)
  target_rows = turns_to_rows(targets, turn_rows, turn_mask, n)
  row_mask = batch["row_mask"].astype(jnp.float32)
  # Each microbatch's masked mean, weighted by its share of the real rows, sums to the full-batch mean.
  total = jnp.maximum(row_mask.sum(), 1.0)
  chunked = _chunks({**rows, "adv": adv_rows, "target": target_rows, "mask": row_mask}, k)
  share = lambda c: jnp.maximum(c["mask"].sum(), 1.0) / total

  # UPDATE THE CRITIC
  def critic_loss(value_params, c):
    loss = losses.value_loss(v_apply(value_params, c), c["target"], c["mask"]) * share(c)
    return loss, jnp.zeros((c["mask"].shape[0],))

  v_loss, _, v_grads = _accumulate(critic_loss, state.value.params, chunked, k)
  v_updates, v_opt = value_tx.update(v_grads, state.value.opt_state, state.value.params)
  new_value = state.value.replace(step=state.value.step + 1, params=optax.apply_updates(state.value.params, v_updates),
                                  opt_state=v_opt)

  # UPDATE THE ACTOR (after the delay)
  def actor_loss(params, c):
    logp, turn_kl = policy_turn_terms(params, frozen["reference"], c, policy)
    loss = losses.mtpo_policy_loss(logp, c["adv"], turn_kl, c["mask"], hp.alpha) * share(c)
    return loss, jnp.stack([logp, turn_kl], -1)

  p_loss, aux, p_grads = _accumulate(actor_loss, state.policy.params, chunked, k)
  turn_logp, kl_rows = aux[:, 0], aux[:, 1]
  active = state.policy.step >= hp.policy_delay
  p_updates, p_opt = policy_tx.update(p_grads, state.policy.opt_state, state.policy.params)
  # Before the delay the actor stands still: no update and an untouched optimizer state.
  p_updates = jax.tree.map(lambda u: jnp.where(active, u, jnp.zeros_like(u)), p_updates)
  p_opt = jax.tree.map(lambda new, old: jnp.where(active, new, old), p_opt, state.policy.opt_state)
  new_policy = state.policy.replace(step=state.policy.step + 1,
                                    params=optax.apply_updates(state.policy.params, p_updates), opt_state=p_opt)

  metrics = {
      "policy_loss": p_loss, "value_loss": v_loss, "policy_active": active.astype(jnp.float32),
      "kl_to_reference": (kl_rows * row_mask).sum() / jnp.maximum(row_mask.sum(), 1.0),
      "explained_variance": adv.explained_variance(v_turns, targets, turn_mask),
      "policy_grad_norm": optax.tree.norm(p_grads), "value_grad_norm": optax.tree.norm(v_grads),
      "update_norm": optax.tree.norm(p_updates) + optax.tree.norm(v_updates),
      "mean_turn_logp": (turn_logp * row_mask).sum() / jnp.maximum(row_mask.sum(), 1.0),
  }
  if "behaviour_logp" in batch:
    # log pi_theta(y|x) - log(behaviour)(y|x) per turn: ~0 on-policy; for MTPO-tau the mixture's distance from
    # pi_theta, which the update ignores (no importance weights; docs/algorithms.md, "MTPO-tau samples")
    metrics["behaviour_log_ratio"] = ((turn_logp - batch["behaviour_logp"]) * row_mask).sum() / jnp.maximum(
        row_mask.sum(), 1.0)
  return ActorCriticState(policy=new_policy, value=new_value), metrics
