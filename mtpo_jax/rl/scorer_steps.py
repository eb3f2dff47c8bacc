"""Train and eval steps of the learned judges: a Bradley-Terry reward model and a direct preference model.

Both are `T5Value` networks (a T5 backbone with a scalar head) trained on judge-labelled conversation pairs
(papers/digest.md A9 step 3):

    reward model      r(x) for one rendered conversation; P(a > b) = sigmoid(r(a) - r(b))     (A5, A7: BT RM)
    preference model  logit(a, b) for the rendered pair; P(a > b) = sigmoid(logit)         (A7, A9)

Batches (one pytree each):
    reward:      ids_a [B, S], ids_b [B, S] int32, label [B] float32 = the judge's P(a > b) in [0, 1]
    preference:  ids [B, S] int32 (the pair text), label [B] float32
    eval batches may add weight [B] float32 (1 for real rows, 0 for padding rows).
`state` is a training/state.py TrainState. Pure and jittable; `model`, `tx`, `schedule` and `loss_kind` are
static (bind them with functools.partial).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from mtpo_jax.models.value import T5Value
from mtpo_jax.rl.losses import bradley_terry_loss, preference_regression_loss

Batch = dict[str, jax.Array]
TrainState = Any  # training/state.py TrainState (step, params, opt_state, rng); rl/ does not import training/
TIE_TOLERANCE = 1e-6  # labels within this of 1/2 are ties: they train the model but do not count for accuracy


def reward_model_logits(params: Any, batch: Batch, rng: jax.Array, model: T5Value,
                        deterministic: bool) -> tuple[jax.Array, jax.Array]:
  """(r_a [B], r_b [B]) from one forward over the stacked [2B, S] conversations."""
  ids = jnp.concatenate([batch["ids_a"], batch["ids_b"]], axis=0)
  rewards = model.apply({"params": params}, ids, deterministic=deterministic, rngs={"dropout": rng})
  return jnp.split(rewards, 2)


def preference_model_logits(params: Any, batch: Batch, rng: jax.Array, model: T5Value,
                            deterministic: bool) -> jax.Array:
  """logit [B] of P(a > b) for the rendered pairs."""
  return model.apply({"params": params}, batch["ids"], deterministic=deterministic, rngs={"dropout": rng})


def preference_accuracy(probability: jax.Array, label: jax.Array, weight: jax.Array | None = None) -> jax.Array:
  """Share of decisive pairs (label != 1/2) on whose winner model and judge agree; [B] -> [].

  A prediction of exactly 1/2 picks no winner and counts as half right (an untrained model scores 0.5).
  """
  weight = jnp.ones_like(label) if weight is None else weight
  decisive = (jnp.abs(label - 0.5) > TIE_TOLERANCE) * weight
  right = jnp.where(probability == 0.5, 0.5, ((probability > 0.5) == (label > 0.5)).astype(jnp.float32))
  return (right * decisive).sum() / jnp.maximum(decisive.sum(), 1.0)


def _apply_gradients(state: TrainState, grads: Any, tx: optax.GradientTransformation, schedule: optax.Schedule,
                     metrics: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "update_norm": optax.tree.norm(updates),
             "learning_rate": schedule(state.step)}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def reward_model_train_step(state: TrainState, batch: Batch, *, model: T5Value, tx: optax.GradientTransformation,
                            schedule: optax.Schedule) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on the soft-label BT loss -[p log s(r_a - r_b) + (1 - p) log s(r_b - r_a)] (A5)."""
  def loss_fn(params):
    r_a, r_b = reward_model_logits(params, batch, state.step_key(), model, deterministic=False)
    return bradley_terry_loss(r_a, r_b, batch["label"]), (r_a, r_b)

  (loss, (r_a, r_b)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, "accuracy": preference_accuracy(jax.nn.sigmoid(r_a - r_b), batch["label"]),
             "reward_mean": 0.5 * (r_a.mean() + r_b.mean()), "reward_margin": jnp.abs(r_a - r_b).mean()}
  return _apply_gradients(state, grads, tx, schedule, metrics)


def preference_model_train_step(state: TrainState, batch: Batch, *, model: T5Value,
                                tx: optax.GradientTransformation, schedule: optax.Schedule,
                                loss_kind: str = "cross_entropy") -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on the probability regression loss (`rl.losses.preference_regression_loss`, A9)."""
  def loss_fn(params):
    logit = preference_model_logits(params, batch, state.step_key(), model, deterministic=False)
    return preference_regression_loss(logit, batch["label"], loss_kind), logit

  (loss, logit), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, "accuracy": preference_accuracy(jax.nn.sigmoid(logit), batch["label"]),
             "logit_mean": logit.mean()}
  return _apply_gradients(state, grads, tx, schedule, metrics)


def _weighted_mean(per_example: jax.Array, weight: jax.Array) -> jax.Array:
  return (per_example * weight).sum() / jnp.maximum(weight.sum(), 1.0)


def _eval_metrics(loss: jax.Array, probability: jax.Array, label: jax.Array, weight: jax.Array):
  return {"loss": _weighted_mean(loss, weight), "accuracy": preference_accuracy(probability, label, weight),
          "probability": probability, "examples": weight.sum(),
          "decisive": ((jnp.abs(label - 0.5) > TIE_TOLERANCE) * weight).sum()}


def reward_model_eval_step(params: Any, batch: Batch, *, model: T5Value) -> dict[str, jax.Array]:
  """loss [], accuracy [], probability [B] = sigmoid(r_a - r_b), reward_a/reward_b [B], examples, decisive."""
  r_a, r_b = reward_model_logits(params, batch, jax.random.PRNGKey(0), model, deterministic=True)
  weight = batch.get("weight", jnp.ones_like(batch["label"]))
  loss = jax.vmap(bradley_terry_loss)(r_a, r_b, batch["label"])  # per example, so padding rows drop out
  return {**_eval_metrics(loss, jax.nn.sigmoid(r_a - r_b), batch["label"], weight), "reward_a": r_a, "reward_b": r_b}


def preference_model_eval_step(params: Any, batch: Batch, *, model: T5Value,
                               loss_kind: str = "cross_entropy") -> dict[str, jax.Array]:
  """loss [], accuracy [], probability [B] = sigmoid(logit), examples, decisive."""
  logit = preference_model_logits(params, batch, jax.random.PRNGKey(0), model, deterministic=True)
  weight = batch.get("weight", jnp.ones_like(batch["label"]))
  loss = jax.vmap(functools.partial(preference_regression_loss, kind=loss_kind))(logit, batch["label"])
  return _eval_metrics(loss, jax.nn.sigmoid(logit), batch["label"], weight)


def pair_preference_train_step(state: TrainState, batch: Batch, *, model: Any, tx: optax.GradientTransformation,
                               schedule: optax.Schedule,
                               loss_kind: str = "cross_entropy") -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step of the siamese preference model (models/preference.py) on (ids_a, ids_b, label) with
  the probability regression loss; antisymmetric by construction, so each pair is seen in one order."""
  def loss_fn(params):
    logit = model.apply({"params": params}, batch["ids_a"], batch["ids_b"], deterministic=False,
                        rngs={"dropout": state.step_key()})
    return preference_regression_loss(logit, batch["label"], loss_kind), logit

  (loss, logit), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, "accuracy": preference_accuracy(jax.nn.sigmoid(logit), batch["label"]),
             "logit_scale": jnp.abs(logit).mean()}
  return _apply_gradients(state, grads, tx, schedule, metrics)


def pair_preference_eval_step(params: Any, batch: Batch, *, model: Any,
                              loss_kind: str = "cross_entropy") -> dict[str, jax.Array]:
  """loss [], accuracy [], probability [B] = sigmoid(logit(a, b)), examples, decisive."""
  logit = model.apply({"params": params}, batch["ids_a"], batch["ids_b"], deterministic=True)
  weight = batch.get("weight", jnp.ones_like(batch["label"]))
  loss = jax.vmap(functools.partial(preference_regression_loss, kind=loss_kind))(logit, batch["label"])
  return _eval_metrics(loss, jax.nn.sigmoid(logit), batch["label"], weight)
