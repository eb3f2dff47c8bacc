"""The SFT loop: the stateful edge around the pure `sft_train_step`.

Data, model, mesh and optimizer arrive as plain arguments (Gin binds them in main.py). The loop initialises
or restores the sharded state, compiles the step ahead of time (printing XLA's memory report), then steps,
logs, evaluates and checkpoints. A non-finite loss stops the run before anything is saved over the last
good checkpoint.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import distributed, partitioning
from mtpo_jax.data.batches import SFTBatches
from mtpo_jax.data.vocabulary import Vocabulary, train_sentencepiece
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5
from mtpo_jax.training import sft
from mtpo_jax.training.checkpoints import Checkpointer, CheckpointError, config_fingerprint, restore_target
from mtpo_jax.training.metrics import MetricsWriter, check_finite, log_compiled_memory, progress
from mtpo_jax.training.state import TrainState

log = logging.getLogger(__name__)
Pairs = Sequence[tuple[str, str]]


def prepare_vocabulary(model_dir: str, texts: Sequence[str], vocab_size: int, vocab_path: str | None) -> Vocabulary:
  """Uses `vocab_path` if given, else trains (once, on process 0) a SentencePiece model into the run directory."""
  if vocab_path:
    return Vocabulary(vocab_path)
  path = os.path.join(model_dir, "vocab", "spm.model")
  if not os.path.exists(path) and distributed.is_primary():
    train_sentencepiece(texts, os.path.join(model_dir, "vocab", "spm"), vocab_size)
  distributed.barrier("sft_vocabulary")
  return Vocabulary(path)


def build_train_state_fns(model: T5, tx: optax.GradientTransformation, input_length: int, target_length: int,
                          seed: int) -> tuple[Callable[[jax.Array], TrainState], Any]:
  """Returns (init_fn(rng) -> TrainState, logical param specs)."""
  dummy_in = jnp.ones((1, input_length), jnp.int32)
  dummy_dec = jnp.ones((1, target_length), jnp.int32)

  def init_fn(rng: jax.Array) -> TrainState:
    init_rng, state_rng = jax.random.split(rng)
    params = nn.unbox(model.init(init_rng, dummy_in, dummy_dec)["params"])
    return TrainState.create(params, tx, state_rng)

  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(seed), dummy_in, dummy_dec)["params"]
  return init_fn, partitioning.logical_param_specs(boxed)




def train_sft(model_dir: str, model_config: T5Config, data: tuple[Pairs, Pairs], *,
              optimizer: tuple[optax.GradientTransformation, optax.Schedule],
              mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), num_steps: int = 1000,
              batch_size: int = 32, input_length: int = 64, target_length: int = 64, vocab_size: int = 512,
              vocab_path: str | None = None, seed: int = 0, log_every: int = 10, eval_every: int = 200,
              eval_batches: int = 4, save_every: int = 500, keep_checkpoints: int = 3,
              num_samples: int = 4) -> dict[str, float]:
  """Trains `model_config` with teacher forcing on `data=(train_pairs, eval_pairs)`; returns final metrics."""
  os.makedirs(model_dir, exist_ok=True)
  train_pairs, eval_pairs = data
  vocab = prepare_vocabulary(model_dir, [t for p in train_pairs for t in p], vocab_size, vocab_path)
  if vocab.vocab_size > model_config.vocab_size:
    raise ValueError(f"vocabulary has {vocab.vocab_size} pieces but the model's vocab_size is "
                     f"{model_config.vocab_size}")
  train = SFTBatches(train_pairs, vocab, batch_size, input_length, target_length, seed)
  evals = SFTBatches(eval_pairs, vocab, batch_size, input_length, target_length, seed + 1)

  # SET UP MESH, MODEL AND STATE
  partitioner = partitioning.Partitioner(partitioning.make_mesh(mesh_spec), mesh_spec.rules)
  model = T5(model_config)
  tx, schedule = optimizer
  init_fn, param_specs = build_train_state_fns(model, tx, input_length, target_length, seed)
  with partitioner.context():
    abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(seed))
  state_sh = partitioner.state_shardings(abstract, param_specs)
  ckpt = Checkpointer(os.path.join(model_dir, "checkpoints"), save_every, keep_checkpoints)
  fingerprint = config_fingerprint(model_config)
  if ckpt.latest_step() is not None:
    state, meta = ckpt.restore(restore_target(abstract, state_sh))
    if meta.get("model_config") != fingerprint:
      raise CheckpointError(f"{ckpt.directory} was written by a different model config: {meta.get('model_config')}")
    start = int(meta["data_position"])
    log.info("resumed from %s at step %d", ckpt.directory, start)
  else:
    state, _ = partitioner.init_state(init_fn, jax.random.PRNGKey(seed), param_specs)
    start = 0

  # COMPILE (ahead of time, with the memory report); each process builds only its rows of every batch
  rows = partitioner.batch_rows(batch_size)
  put = lambda b: partitioner.put_process_batch(b, batch_size)
  batch_sh = partitioner.batch_shardings(train.batch(0))
  step_fn = partitioner.jit(functools.partial(sft.sft_train_step, model=model, tx=tx, schedule=schedule),
                            in_shardings=(state_sh, batch_sh), out_shardings=(state_sh, partitioner.replicated),
                            donate_argnums=0)
  eval_fn = partitioner.jit(functools.partial(sft.sft_eval_step, model=model),
                            in_shardings=(state_sh.params, batch_sh), out_shardings=partitioner.replicated)
  compiled = step_fn.lower(state, put(train.batch(0, rows))).compile()
  log_compiled_memory(compiled)

  # TRAIN
  writer = MetricsWriter(model_dir)
  bar = progress(num_steps, initial=start, desc="sft")
  last, t0, tokens = {}, time.time(), 0.0
  try:
    for step in range(start, num_steps):
      state, metrics = compiled(state, put(train.batch(step, rows)))
      done = step + 1
      if done % log_every == 0 or ckpt.should_save(done) or done == num_steps:
        last = check_finite(jax.device_get(metrics), done, ckpt)
        elapsed = time.time() - t0
        tokens_per_s = last["tokens"] * (done - start) / max(elapsed, 1e-9) if done > start else 0.0
        last["tokens_per_s"] = tokens_per_s
        writer.write(done, last)
        bar.set_postfix(loss=f"{last['loss']:.3f}", tok_s=f"{tokens_per_s:,.0f}")
      if done % eval_every == 0 or done == num_steps:
        ev = _evaluate(eval_fn, state.params, evals, put, rows, eval_batches)
        writer.write(done, ev, prefix="eval")
        last.update({f"eval_{k}": v for k, v in ev.items()})
      ckpt.save(done, state, {"data_position": done, "model_config": fingerprint}, force=done == num_steps)
      bar.update(1)
  finally:
    bar.close()
    ckpt.close()
    writer.close()
  if num_samples:
    params = distributed.to_host(state.params)  # a collective when the parameters span processes
    if distributed.is_primary():
      _write_samples(model, params, vocab, eval_pairs[:num_samples], input_length, target_length,
                     os.path.join(model_dir, "samples.txt"))
  return last


def _write_samples(model: T5, params, vocab: Vocabulary, pairs: Pairs, input_length: int, target_length: int,
                   path: str) -> None:
  """Greedy replies to a few held-out inputs, beside their references, for a person to read."""
  from mtpo_jax.data.batches import pack_ids
  from mtpo_jax.models.decoding import Sampler, SamplingConfig
  inputs = pack_ids(vocab.encode_batch([p[0] for p in pairs]), input_length, True, True)
  out = Sampler(model, SamplingConfig(max_new_tokens=target_length, greedy=True))(
      jax.device_get(params), inputs, jax.random.PRNGKey(0))
  with open(path, "w") as f:
    for (source, reference), tokens in zip(pairs, out.tokens):
      f.write(f"input:     {source}\nreference: {reference}\nmodel:     {vocab.decode(tokens)}\n\n")
  log.info("wrote %d greedy samples to %s", len(pairs), path)



def _evaluate(eval_fn, params, evals: SFTBatches, put: Callable, rows: slice, num_batches: int) -> dict[str, float]:
  results = [jax.device_get(eval_fn(params, put(evals.batch(i, rows)))) for i in range(num_batches)]
  return {k: float(np.mean([r[k] for r in results])) for k in results[0]}
