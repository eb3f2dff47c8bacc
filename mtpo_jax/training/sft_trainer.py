"""The SFT loop: the stateful edge around the pure `sft_train_step`.

Data, model, mesh and optimizer arrive as plain arguments (Gin binds them, gin_registry.py). On the trainer
skeleton (training/loop.py) it initialises or restores the sharded state, compiles the step ahead of time
(printing XLA's memory report), then steps, logs, evaluates and checkpoints. A non-finite loss stops the run
before anything is saved over the last good checkpoint.
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

from mtpo_jax import atomic_files, distributed, partitioning, run_config
from mtpo_jax.data.batches import SFTBatches
from mtpo_jax.text.vocabulary import Vocabulary, train_sentencepiece
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5
from mtpo_jax.training import sft
from mtpo_jax.checkpoints import config_fingerprint
from mtpo_jax.training.loop import LoopSettings, TrainLoop, run_steps
from mtpo_jax.training.metrics import log_compiled_memory
from mtpo_jax.training.state import TrainState

log = logging.getLogger(__name__)
Pairs = Sequence[tuple[str, str]]


def prepare_vocabulary(model_dir: str, texts: Sequence[str], vocab_size: int) -> Vocabulary:
  """The run directory's SentencePiece model, trained (once, on process 0) if it is not there yet."""
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
              mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), loop: LoopSettings = LoopSettings(),
              input_length: int = 64, target_length: int = 64, vocab_size: int = 512, vocab_path: str | None = None,
              eval_batches: int = 4, num_samples: int = 4) -> dict[str, float]:
  """Trains `model_config` with teacher forcing on `data=(train_pairs, eval_pairs)`; returns final metrics.
  `loop`: steps, batch size, logging/eval/save cadence and seed; a new SentencePiece model of `vocab_size` pieces
  is trained into the run directory unless `vocab_path` names one."""
  if vocab_path is None and vocab_size > model_config.vocab_size:  # checked before the vocabulary is trained
    raise ValueError(f"train_sft.vocab_size = {vocab_size} does not fit T5Config.vocab_size = "
                     f"{model_config.vocab_size}: the model needs an embedding row for every piece")
  seed, batch_size = loop.seed, loop.batch_size
  given = Vocabulary(vocab_path) if vocab_path else None
  with TrainLoop(model_dir, mesh_spec, save_every=loop.save_every, keep_checkpoints=loop.keep_checkpoints,
                 vocab=given, model_config=model_config, fall_back=loop.restore_earlier_if_corrupt) as run:
    partitioner = run.partitioner
    partitioner.check_batch_size(batch_size, "LoopSettings.batch_size")
    # Every setting has passed its checks: the run directory may now be written (a vocabulary is trained into it).
    run_config.accept(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    train_pairs, eval_pairs = data
    vocab = given or prepare_vocabulary(model_dir, [t for p in train_pairs for t in p], vocab_size)
    vocab.check_fits(model_config.vocab_size)  # a vocabulary trained here, or left by an earlier run of MODEL_DIR
    train = SFTBatches(train_pairs, vocab, batch_size, input_length, target_length, seed)
    evals = SFTBatches(eval_pairs, vocab, batch_size, input_length, target_length, seed + 1)

    # MODEL AND STATE (restored, or initialised in its sharded layout)
    model = T5(model_config)
    tx, schedule = optimizer
    init_fn, param_specs = build_train_state_fns(model, tx, input_length, target_length, seed)
    with partitioner.context():
      abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(seed))
    state_sh = partitioner.state_shardings(abstract, param_specs)
    fingerprint = {"model_config": config_fingerprint(model_config)}
    restored = run.restore(abstract, state_sh, fingerprint)
    if restored is not None:
      state, start = restored[0], int(restored[1]["data_position"])
    else:
      state, start = partitioner.init_sharded(init_fn, jax.random.PRNGKey(seed), state_sh), 0

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
    run.start(loop.num_steps, start, "sft")
    t0 = time.time()
    throughput = lambda m, done: {"tokens_per_s": m["tokens"] * (done - start) / max(time.time() - t0, 1e-9)}
    state, last = run_steps(
        run, state, lambda st, step: compiled(st, put(train.batch(step, rows))), start=start, settings=loop,
        meta=fingerprint, evaluate=lambda st: _evaluate(eval_fn, st.params, evals, put, rows, eval_batches),
        postfix=lambda m: {"loss": f"{m['loss']:.3f}", "tok_s": f"{m['tokens_per_s']:,.0f}"}, derived=throughput)
  if num_samples:
    params = distributed.to_host(state.params)  # a collective when the parameters span processes
    if distributed.is_primary():
      _write_samples(model, params, vocab, eval_pairs[:num_samples], input_length, target_length,
                     os.path.join(model_dir, "samples.txt"))
  return last


def _write_samples(model: T5, params, vocab: Vocabulary, pairs: Pairs, input_length: int, target_length: int,
                   path: str) -> None:
  """Greedy replies to a few held-out inputs, beside their references, for a person to read."""
  from mtpo_jax.models.decoding import Sampler, SamplingConfig
  from mtpo_jax.text.packing import pack_ids
  inputs = pack_ids(vocab.encode_batch([p[0] for p in pairs]), input_length, True, True)
  out = Sampler(model, SamplingConfig(max_new_tokens=target_length, greedy=True))(
      jax.device_get(params), inputs, jax.random.PRNGKey(0))
  atomic_files.write_text(path, "".join(f"input:     {source}\nreference: {reference}\nmodel:     "
                                       f"{vocab.decode(tokens)}\n\n" for (source, reference), tokens
                                       in zip(pairs, out.tokens)))
  log.info("wrote %d greedy samples to %s", len(pairs), path)



def _evaluate(eval_fn, params, evals: SFTBatches, put: Callable, rows: slice, num_batches: int) -> dict[str, float]:
  results = [jax.device_get(eval_fn(params, put(evals.batch(i, rows)))) for i in range(num_batches)]
  return {k: float(np.mean([r[k] for r in results])) for k in results[0]}
