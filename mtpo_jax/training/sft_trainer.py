"""The SFT loop: the stateful edge around the pure `sft_train_step`.

Data, model, mesh and optimizer arrive as plain arguments (Gin binds them, gin_registry.py). On the trainer
skeleton (training/loop.py) it initialises or restores the sharded state, compiles the step ahead of time
(printing XLA's memory report), then steps, logs, evaluates and checkpoints. A non-finite loss stops the run
before anything is saved over the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import atomic_files, distributed, partitioning, run_config
from mtpo_jax.data.task_data import TaskBatches, TaskFeed, sentencepiece_path
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5
from mtpo_jax.training import sft
from mtpo_jax.checkpoints import config_fingerprint
from mtpo_jax.training.loop import LoopSettings, TrainLoop, run_steps
from mtpo_jax.training.metrics import log_compiled_memory
from mtpo_jax.training.state import TrainState

log = logging.getLogger(__name__)


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




def train_sft(model_dir: str, model_config: T5Config, mixture_or_task_name: str,
              task_feature_lengths: Mapping[str, int], *,
              optimizer: tuple[optax.GradientTransformation, optax.Schedule],
              mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), loop: LoopSettings = LoopSettings(),
              train_split: str = "train", eval_split: str | None = "validation", use_packing: bool = False,
              data_shards: int = 1, task_modules: Sequence[str] = (), eval_batches: int = 4,
              num_samples: int = 4) -> dict[str, float]:
  """Trains `model_config` with teacher forcing on the SeqIO task or mixture `mixture_or_task_name` (T5X's
  name and meaning; `task_modules` are imported first, T5X's MIXTURE_OR_TASK_MODULE), its examples cut to
  `task_feature_lengths` {"inputs": S, "targets": T}; returns final metrics. The vocabulary is the task's.
  `loop`: steps, batch size, logging/eval/save cadence and seed. Batches: data/task_data.py (`data_shards`,
  `use_packing`); evaluation reads `eval_split` (None: no evaluation)."""
  seed, batch_size = loop.seed, loop.batch_size
  train_feed = TaskFeed(mixture_or_task_name, dict(task_feature_lengths), train_split, use_packing, data_shards,
                        tuple(task_modules))
  vocab = Vocabulary(sentencepiece_path(mixture_or_task_name, task_modules))
  input_length, target_length = task_feature_lengths["inputs"], task_feature_lengths["targets"]
  with TrainLoop(model_dir, mesh_spec, save_every=loop.save_every, keep_checkpoints=loop.keep_checkpoints,
                 vocab=vocab, model_config=model_config, fall_back=loop.restore_earlier_if_corrupt) as run:
    partitioner = run.partitioner
    partitioner.check_batch_size(batch_size, "LoopSettings.batch_size")
    train = TaskBatches(train_feed, batch_size, seed)
    evals = (TaskBatches(dataclasses.replace(train_feed, split=eval_split), batch_size, seed + 1)
             if eval_split and eval_batches else None)
    # Read (and so check) the data before anything is written: a bad file leaves MODEL_DIR as it was.
    rows = partitioner.batch_rows(batch_size)
    first = train.batch(0, rows)
    if evals is not None:
      evals.batch(0, rows)
    run_config.accept(model_dir)

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
    put = lambda b: partitioner.put_process_batch(b, batch_size)
    batch_sh = partitioner.batch_shardings(first)
    step_fn = partitioner.jit(functools.partial(sft.sft_train_step, model=model, tx=tx, schedule=schedule),
                              in_shardings=(state_sh, batch_sh), out_shardings=(state_sh, partitioner.replicated),
                              donate_argnums=0)
    eval_fn = partitioner.jit(functools.partial(sft.sft_eval_step, model=model),
                              in_shardings=(state_sh.params, batch_sh), out_shardings=partitioner.replicated)
    compiled = step_fn.lower(state, put(first)).compile()
    log_compiled_memory(compiled)

    # TRAIN
    run.start(loop.num_steps, start, "sft")
    t0 = time.time()
    throughput = lambda m, done: {"tokens_per_s": m["tokens"] * (done - start) / max(time.time() - t0, 1e-9)}
    evaluate = (lambda st: _evaluate(eval_fn, st.params, evals, put, rows, eval_batches)) if evals else None
    state, last = run_steps(
        run, state, lambda st, step: compiled(st, put(train.batch(step, rows))), start=start, settings=loop,
        meta=fingerprint, evaluate=evaluate,
        postfix=lambda m: {"loss": f"{m['loss']:.3f}", "tok_s": f"{m['tokens_per_s']:,.0f}"}, derived=throughput)
  if num_samples and evals is not None and not use_packing:
    params = distributed.to_host(state.params)  # a collective when the parameters span processes
    if distributed.is_primary():
      _write_samples(model, params, vocab, evals.batch(0), num_samples, target_length,
                     os.path.join(model_dir, "samples.txt"))
  return last


def _write_samples(model: T5, params, vocab: Vocabulary, batch: dict[str, np.ndarray], num: int,
                   target_length: int, path: str) -> None:
  """Greedy replies to the first `num` held-out inputs of `batch` (exactly the tokens the model is evaluated
  on), beside their references, for a person to read."""
  from mtpo_jax.models.decoding import Sampler, SamplingConfig
  inputs, targets = batch["encoder_input_tokens"][:num], batch["decoder_target_tokens"][:num]
  out = Sampler(model, SamplingConfig(max_new_tokens=target_length, greedy=True))(
      jax.device_get(params), inputs, jax.random.PRNGKey(0))
  atomic_files.write_text(path, "".join(f"input:     {vocab.decode(list(source))}\nreference: "
                                       f"{vocab.decode(list(reference))}\nmodel:     {vocab.decode(tokens)}\n\n"
                                       for source, reference, tokens in zip(inputs, targets, out.tokens)))
  log.info("wrote %d greedy samples to %s", len(inputs), path)



def _evaluate(eval_fn, params, evals: TaskBatches, put: Callable, rows: slice, num_batches: int) -> dict[str, float]:
  results = [jax.device_get(eval_fn(params, put(evals.batch(i, rows)))) for i in range(num_batches)]
  return {k: float(np.mean([r[k] for r in results])) for k in results[0]}
