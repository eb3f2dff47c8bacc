"""Supervised fine-tuning: masked teacher-forcing cross-entropy and its pure train step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from mtpo_jax.models.t5 import T5
from mtpo_jax.training.state import TrainState

Batch = dict[str, jax.Array]  # encoder_input_tokens [B, S], decoder_input_tokens / decoder_target_tokens /
                              # decoder_loss_weights [B, T] (SeqIO EncDecFeatureConverter names); packed rows
                              # add encoder_segment_ids [B, S] and decoder_segment_ids [B, T]


def token_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Weighted mean of -log softmax(logits)[target] over [B, T]; also the weighted token accuracy."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  total = jnp.maximum(weights.sum(), 1.0)
  accuracy = ((jnp.argmax(logits, -1) == targets) * weights).sum() / total
  return (ce * weights).sum() / total, accuracy


def sft_loss(params: Any, batch: Batch, rng: jax.Array, model: T5, deterministic: bool = False):
  logits = model.apply({"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                       deterministic=deterministic, rngs={"dropout": rng},
                       encoder_segment_ids=batch.get("encoder_segment_ids"),
                       decoder_segment_ids=batch.get("decoder_segment_ids"))
  loss, accuracy = token_cross_entropy(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"])
  return loss, {"accuracy": accuracy}


def sft_train_step(state: TrainState, batch: Batch, *, model: T5, tx: optax.GradientTransformation,
                   schedule: optax.Schedule) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on the masked cross-entropy. Pure: jit it with shardings and a donated state."""
  grad_fn = jax.value_and_grad(sft_loss, has_aux=True)
  (loss, aux), grads = grad_fn(state.params, batch, state.step_key(), model)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  # update_norm catches an update that poisons the parameters while this step's loss was still finite.
  metrics = {"loss": loss, "accuracy": aux["accuracy"], "grad_norm": optax.tree.norm(grads),
             "update_norm": optax.tree.norm(updates),
             "learning_rate": schedule(state.step), "tokens": batch["decoder_loss_weights"].sum()}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def sft_eval_step(params: Any, batch: Batch, *, model: T5) -> dict[str, jax.Array]:
  loss, aux = sft_loss(params, batch, jax.random.PRNGKey(0), model, deterministic=True)
  return {"loss": loss, "accuracy": aux["accuracy"]}
