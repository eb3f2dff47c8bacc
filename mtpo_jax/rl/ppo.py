"""Deep Iterative PPO (papers/digest.md B2-B4): the pure Q-regression and single-turn PPO steps.

One outer iteration i of Algorithm 1 (B3) trains two things with the functions here:

  Q_i (policy evaluation, B2 Observation 2): a `T5Value` regressed on Monte-Carlo returns G of pi_i's
      rollouts. Its input is the single-turn reward-model input "<policy input of s>" + " <response a>"
      (`q_input_ids`, at the id level: never re-tokenised). `q_fit_step` minimises `q_regression_loss`.
  pi_{i+1} (policy improvement, B2 Observation 1, Thm 2): token-level PPO on states logged by pi_i, with
      Q_i as the reward model scored on each whole response. `ppo_step`:
        r(s, a)   = Q_i(s, a) - beta * [log pi(a|s) - log pi_i(a|s)]        (KL to the iteration's start pi_i)
        A(s, a)   = r(s, a) - b(s),  b = V_phi(s) (learned) or the batch mean of r; batch-normalised
        L_pi      = PPO-clip over the response's tokens (Schulman et al. 2017, `losses.ppo_clip_loss`)
        L_V       = (V_phi(s) - r(s, a))^2                                  (only with the learned baseline)
      repeated for `ppo_epochs` epochs over one sampled batch.

Choices the paper leaves open ([NOT FOUND] in B3), documented in docs/algorithms.md "Iterative PPO":
- KL estimate in the reward: the sampled log-ratio summed over the response. Its score-function gradient is the
  exact gradient of E[Q] - beta KL(pi||pi_i) (the exact per-token KL in the reward would drop the KL's direct
  gradient); the exact KL from both models' logits is reported as the metric.
- The old log-probs of the ratio are recomputed by teacher forcing at the step's start (temperature 1), so the
  first epoch's ratio is 1 exactly; sample at temperature 1 for on-policy PPO.
Pure and jittable: no gin, no orbax; models, optimizers and hyperparameters are static.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax.models.t5 import T5, shift_right
from mtpo_jax.models.value import T5Value
from mtpo_jax.rl import advantages as adv
from mtpo_jax.rl import kl, losses

BASELINES = ("value", "batch_mean")
Q_LOSSES = ("mse", "cross_entropy")


@dataclasses.dataclass(frozen=True)
class PPOHParams:
  """Single-turn PPO settings (none is given by the paper, B3 [NOT FOUND]; the defaults are our choice).

  beta: KL(pi || pi_i) coefficient in the reward; clip_epsilon: PPO clip range; ppo_epochs: gradient epochs per
  sampled batch; baseline: "value" (a learned V_phi(s)) or "batch_mean"; normalize_advantages: batch-normalise.
  steps, batch_size: PPO steps per outer iteration and logged states per step (read by the Iterative PPO loop,
  not by `ppo_step`).
  """
  beta: float = 0.05
  clip_epsilon: float = 0.2
  ppo_epochs: int = 4
  baseline: str = "value"
  normalize_advantages: bool = True
  steps: int = 100
  batch_size: int = 16

  def __post_init__(self):
    if self.baseline not in BASELINES:
      raise ValueError(f"unknown baseline {self.baseline!r}; expected one of {BASELINES}")
    for name in ("ppo_epochs", "steps", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"PPOHParams.{name} must be >= 1, got {getattr(self, name)}")
    if not (self.beta >= 0 and self.clip_epsilon > 0):
      raise ValueError(f"need beta >= 0 and clip_epsilon > 0, got {self.beta}, {self.clip_epsilon}")


# Q INPUTS AND REGRESSION

def q_input_ids(encoder_ids, decoder_ids, token_mask, length: int, eos_id: int = 1, pad_id: int = 0):
  """The Q-function's input for (state, response): the state's ids (no EOS), then the response's ids (no EOS),
  then EOS, right-padded to `length`; the oldest ids are dropped if it overflows (pack_ids' left truncation).

  Decoded, this is "<policy input text> <response>", e.g. "topic: ...\\nStudent: ...\\nTeacher: <response>".
  encoder_ids [N, S] (EOS-terminated, PAD after), decoder_ids / token_mask [N, L] -> [N, length] int32.
  numpy in -> numpy out (host), jax in -> jax out (jittable).
  """
  xp = np if isinstance(encoder_ids, np.ndarray) else jnp
  s, l = encoder_ids.shape[1], decoder_ids.shape[1]
  s_len = (encoder_ids != pad_id).sum(1) - (encoder_ids == eos_id).any(1)  # state tokens before its EOS
  response = (token_mask > 0) & (decoder_ids != eos_id)
  r_len = response.sum(1)
  shift = xp.maximum(s_len + r_len + 1 - length, 0)[:, None]
  src = xp.arange(length)[None, :] + shift  # position in the virtual sequence state ++ response ++ [EOS]
  from_state = xp.take_along_axis(encoder_ids, xp.clip(src, 0, s - 1), axis=1)
  from_resp = xp.take_along_axis(decoder_ids, xp.clip(src - s_len[:, None], 0, l - 1), axis=1)
  end = (s_len + r_len)[:, None]
  out = xp.where(src < s_len[:, None], from_state, xp.where(src < end, from_resp, pad_id))
  return xp.where(src == end, eos_id, out).astype(xp.int32)


def q_values(raw: jax.Array, loss_kind: str, shift: jax.Array | float = 0.0,
             scale: jax.Array | float = 1.0) -> jax.Array:
  """Q(s, a) in reward units from the head's raw output: raw * scale + shift ("mse"; shift/scale undo the target
  normalisation) or sigmoid(raw) ("cross_entropy", returns in [0, 1])."""
  if loss_kind == "mse":
    return raw * scale + shift
  if loss_kind == "cross_entropy":
    return jax.nn.sigmoid(raw)
  raise ValueError(f"unknown Q loss {loss_kind!r}; expected one of {Q_LOSSES}")


def q_regression_loss(raw: jax.Array, targets: jax.Array, weight: jax.Array, loss_kind: str = "mse") -> jax.Array:
  """Weighted mean over [N] of (raw - G)^2 ("mse", the default: "standard regression", B3) or of the soft-label
  cross-entropy -[G log s(raw) + (1 - G) log s(-raw)] ("cross_entropy", for returns in [0, 1], e.g. the SR
  setting's binary outcome). `targets` are the (possibly normalised) returns and carry no gradient."""
  t = jax.lax.stop_gradient(targets)
  if loss_kind == "mse":
    per = (raw - t) ** 2
  elif loss_kind == "cross_entropy":
    per = -(t * jax.nn.log_sigmoid(raw) + (1.0 - t) * jax.nn.log_sigmoid(-raw))
  else:
    raise ValueError(f"unknown Q loss {loss_kind!r}; expected one of {Q_LOSSES}")
  return (per * weight).sum() / jnp.maximum(weight.sum(), 1.0)


def q_fit_step(state: Any, batch: dict[str, jax.Array], *, model: T5Value, tx: optax.GradientTransformation,
               loss_kind: str = "mse") -> tuple[Any, dict[str, jax.Array]]:
  """One optimizer step of Q on batch {q_ids [B, Sq], target [B]} (state: training/state.py TrainState)."""
  def loss_fn(params):
    raw = model.apply({"params": params}, batch["q_ids"])
    return q_regression_loss(raw, batch["target"], jnp.ones_like(raw), loss_kind), raw

  (loss, raw), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state)
  return new, {"loss": loss, "grad_norm": optax.tree.norm(grads), "prediction_mean": raw.mean()}


def q_forward(params: Any, q_ids: jax.Array, *, model: T5Value) -> jax.Array:
  """The Q head's raw output [B] for q_ids [B, Sq] (see `q_values` for reward units)."""
  return model.apply({"params": params}, q_ids)


# SINGLE-TURN PPO

def response_terms(params: Any, ref_params: Any, batch: dict[str, jax.Array],
                   policy: T5) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(log pi(a_t|s, a_<t) [B, L] (0 off the mask), sampled log-ratio sum_t log pi/pi_ref [B], exact
  KL(pi || pi_ref) summed over the response's positions [B]) by teacher forcing both models."""
  mask = batch["token_mask"]
  dec_in = shift_right(batch["decoder_ids"], policy.config.decoder_start_token_id)
  logits = policy.apply({"params": params}, batch["encoder_ids"], dec_in)
  ref_logits = policy.apply({"params": ref_params}, batch["encoder_ids"], dec_in)
  logp = kl.token_logprobs(logits, batch["decoder_ids"]) * mask
  logp_ref = kl.token_logprobs(ref_logits, batch["decoder_ids"]) * mask
  return logp, (logp - logp_ref).sum(-1), kl.sequence_kl(logits, ref_logits, mask)


def ppo_rewards(q: jax.Array, log_ratio: jax.Array, beta: float) -> jax.Array:
  """r(s, a) = Q_i(s, a) - beta * log(pi(a|s) / pi_i(a|s)): [B] -> [B] (Thm 2's KL-regularised objective)."""
  return q - beta * log_ratio


def ppo_advantages(rewards: jax.Array, baseline: jax.Array, normalize: bool) -> jax.Array:
  """A = r - b(s), batch-normalised when asked; [B]."""
  a = rewards - baseline
  return adv.normalize(a, jnp.ones_like(a)) if normalize else a


def ppo_step(state: Any, batch: dict[str, jax.Array], frozen: dict[str, Any], *, hp: PPOHParams, policy: T5,
             value: T5Value, policy_tx: optax.GradientTransformation, value_tx: optax.GradientTransformation,
             q_loss: str = "mse") -> tuple[Any, dict[str, jax.Array]]:
  """`hp.ppo_epochs` PPO epochs on one batch of sampled responses to logged states.

  state: rl/actor_critic.ActorCriticState (policy TrainState, baseline-value TrainState).
  batch: encoder_ids [B, S] (the logged states), decoder_ids / token_mask [B, L] (responses sampled from the
  current pi), q_ids [B, Sq] (`q_input_ids` of them).
  frozen: {"reference": pi_i's params, "q": Q_i's params, "q_shift": [], "q_scale": []}.
  """
  enc, mask = batch["encoder_ids"], batch["token_mask"]
  dec_in = shift_right(batch["decoder_ids"], policy.config.decoder_start_token_id)

  # SCORE THE RESPONSES: Q_i, KL to pi_i, baseline (all constants for the update)
  logp_old, log_ratio, kl_exact = jax.lax.stop_gradient(
      response_terms(state.policy.params, frozen["reference"], batch, policy))
  q = q_values(q_forward(frozen["q"], batch["q_ids"], model=value), q_loss, frozen["q_shift"], frozen["q_scale"])
  rewards = jax.lax.stop_gradient(ppo_rewards(q, log_ratio, hp.beta))
  if hp.baseline == "value":
    baseline = value.apply({"params": state.value.params}, enc)
  else:
    baseline = jnp.full_like(rewards, rewards.mean())
  advantages = jax.lax.stop_gradient(ppo_advantages(rewards, baseline, hp.normalize_advantages))

  # UPDATE: ppo_epochs passes over the batch
  def epoch(carry, _):
    p_state, v_state = carry

    def actor_loss(params):
      logits = policy.apply({"params": params}, enc, dec_in)
      logp = kl.token_logprobs(logits, batch["decoder_ids"])
      return losses.ppo_clip_loss(logp, logp_old, advantages, mask, hp.clip_epsilon)

    (p_loss, clip_frac), p_grads = jax.value_and_grad(actor_loss, has_aux=True)(p_state.params)
    p_updates, p_opt = policy_tx.update(p_grads, p_state.opt_state, p_state.params)
    p_state = p_state.replace(step=p_state.step + 1, params=optax.apply_updates(p_state.params, p_updates),
                              opt_state=p_opt)
    v_loss = jnp.zeros(())
    if hp.baseline == "value":
      critic = lambda vp: losses.value_loss(value.apply({"params": vp}, enc), rewards, jnp.ones_like(rewards))
      v_loss, v_grads = jax.value_and_grad(critic)(v_state.params)
      v_updates, v_opt = value_tx.update(v_grads, v_state.opt_state, v_state.params)
      v_state = v_state.replace(step=v_state.step + 1, params=optax.apply_updates(v_state.params, v_updates),
                                opt_state=v_opt)
    return (p_state, v_state), {"policy_loss": p_loss, "clip_fraction": clip_frac, "value_loss": v_loss,
                                "policy_grad_norm": optax.tree.norm(p_grads)}

  (new_policy, new_value), per_epoch = jax.lax.scan(epoch, (state.policy, state.value), None, length=hp.ppo_epochs)
  lengths = mask.sum(-1)
  metrics = {k: v.mean() for k, v in per_epoch.items()}
  metrics.update(q_reward=q.mean(), q_reward_std=q.std(), reward=rewards.mean(), kl_to_start=kl_exact.mean(),
                 log_ratio_to_start=log_ratio.mean(), baseline=baseline.mean(),
                 explained_variance=adv.explained_variance(baseline, rewards, jnp.ones_like(rewards)),
                 response_tokens=lengths.mean(), logp=logp_old.sum(-1).mean())
  return state.replace(policy=new_policy, value=new_value), metrics
