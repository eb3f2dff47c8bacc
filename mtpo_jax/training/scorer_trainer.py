"""Training loops of the learned judges (papers/digest.md A9 step 3): a BT reward model and a direct preference
model, both T5Value networks fit to judge-labelled pairs of Education Dialogue conversations.

DATA (training/pair_sources.py, `pair_source`): "generated" (default) pairs each generated record with its replay
by a different teacher; "policy" samples two conversations per context from a policy checkpoint (the paper's
offline preference data, A7); "single_turn_reward" / "single_turn_value" pair two alternative policy turns at a
logged state (A8). Pairs are labelled by the judge (default: the ground-truth RubricJudge) with p = P(a better);
train and eval pairs come from disjoint "train" and "eval" streams, and sampled pairs are cached in
MODEL_DIR/pairs_{split}.jsonl so a resumed run trains on exactly the same data. The reward model sees
(conversation a, conversation b, p); the preference model sees the rendered pair in both orders, (a, b) -> p and
(b, a) -> 1 - p, to teach antisymmetry. Inputs are rendered by oracles/learned.py, the same code the learned
judges use at rollout time.

The loop mirrors sft_trainer: sharded init (optionally the backbone from a policy checkpoint), orbax resume
with exact data position, ahead-of-time compile with the memory report, JSONL/TensorBoard metrics, progress
bar, a stop on non-finite values before anything is saved. At the end, the held-out accuracy and calibration
(ECE over 10 bins and a reliability table) go to MODEL_DIR/eval_report.json and the log.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from typing import Any, Callable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import partitioning
from mtpo_jax.data.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.preference import T5PairPreference
from mtpo_jax.models.value import T5Value, value_params_from_policy
from mtpo_jax.oracles import learned
from mtpo_jax.oracles.base import Judge
from mtpo_jax.rl import scorer_steps as steps
from mtpo_jax.training import pair_sources, scorer_eval
from mtpo_jax.training.pair_sources import PairSampling, judged_pairs  # noqa: F401  (judged_pairs re-exported)
from mtpo_jax.training.checkpoints import (Checkpointer, CheckpointError, config_fingerprint, load_params,
                                          restore_target)
from mtpo_jax.training.metrics import MetricsWriter, check_finite, log_compiled_memory, progress
from mtpo_jax.training.state import TrainState

log = logging.getLogger(__name__)
Pair = pair_sources.Pair
Arrays = dict[str, np.ndarray]


# DATA

def reward_arrays(pairs: Sequence[Pair], vocab: Vocabulary, input_length: int) -> Arrays:
  """ids_a, ids_b [N, S] int32 and label [N] float32 = P(a > b)."""
  a, b, p = zip(*pairs)
  return {"ids_a": learned.tokenize(learned.reward_model_inputs(a, vocab, input_length), vocab, input_length),
          "ids_b": learned.tokenize(learned.reward_model_inputs(b, vocab, input_length), vocab, input_length),
          "label": np.asarray(p, np.float32)}


def preference_arrays(pairs: Sequence[Pair], vocab: Vocabulary, input_length: int) -> Arrays:
  """ids [2N, S] int32, label [2N] float32: row 2i is pair i as (a, b) -> p, row 2i+1 is (b, a) -> 1 - p."""
  firsts = [x for a, b, _ in pairs for x in (a, b)]
  seconds = [x for a, b, _ in pairs for x in (b, a)]
  labels = [x for _, _, p in pairs for x in (p, 1.0 - p)]
  texts = learned.preference_model_inputs(firsts, seconds, vocab, input_length)
  return {"ids": learned.tokenize(texts, vocab, input_length), "label": np.asarray(labels, np.float32)}


class PairBatches:
  """Fixed-shape batches; `batch(i)` is a pure function of (seed, i), so a resumed run replays exactly."""

  def __init__(self, arrays: Arrays, batch_size: int, seed: int = 0):
    self.arrays, self.batch_size, self.seed = arrays, batch_size, seed
    self.size = len(arrays["label"])
    if not self.size:
      raise ValueError("scorer data is empty")

  def batch(self, index: int, rows: slice | None = None) -> Arrays:
    """Global batch `index`, or only its rows `rows` (this process's block under jax.distributed)."""
    positions = np.arange(index * self.batch_size, (index + 1) * self.batch_size)
    if rows is not None:
      positions = positions[rows]
    orders = {e: np.random.default_rng([self.seed, e]).permutation(self.size) for e in set(positions // self.size)}
    examples = np.array([orders[p // self.size][p % self.size] for p in positions])
    return {k: v[examples] for k, v in self.arrays.items()}

  def in_order(self) -> Iterator[Arrays]:
    """Every row once, in order; the last batch padded with weight-0 copies of row 0."""
    for lo in range(0, self.size, self.batch_size):
      rows = np.arange(lo, lo + self.batch_size)
      real = rows < self.size
      batch = {k: v[np.where(real, rows, 0)] for k, v in self.arrays.items()}
      yield {**batch, "weight": real.astype(np.float32)}


# TASKS: what differs between the two models

@dataclasses.dataclass(frozen=True)
class _Task:
  kind: str  # "reward" | "preference" (joint input) | "pair_preference" (siamese)
  make_arrays: Callable[[Sequence[Pair], Vocabulary, int], Arrays]
  train_step: Callable
  eval_step: Callable
  make_model: Callable[[T5Config], Any] = T5Value
  num_inputs: int = 1  # id arrays the model's __call__ takes


def _reward_task() -> _Task:
  return _Task("reward", reward_arrays, steps.reward_model_train_step, steps.reward_model_eval_step)


def _preference_task(loss_kind: str, architecture: str) -> _Task:
  if loss_kind not in ("cross_entropy", "squared"):
    raise ValueError(f"unknown preference loss {loss_kind!r}; expected cross_entropy or squared")
  if architecture == "siamese":
    return _Task("pair_preference", reward_arrays,
                 functools.partial(steps.pair_preference_train_step, loss_kind=loss_kind),
                 functools.partial(steps.pair_preference_eval_step, loss_kind=loss_kind), T5PairPreference, 2)
  if architecture != "joint":
    raise ValueError(f"unknown preference architecture {architecture!r}; expected siamese or joint")
  return _Task("preference", preference_arrays,
               functools.partial(steps.preference_model_train_step, loss_kind=loss_kind),
               functools.partial(steps.preference_model_eval_step, loss_kind=loss_kind))


# STATE

def _state_layout(model: Any, tx: optax.GradientTransformation, input_length: int, seed: int,
                  partitioner: partitioning.Partitioner, num_inputs: int = 1) -> tuple[Callable, Any, Any]:
  """(init_fn(rng, policy_backbone=None) -> TrainState, abstract state, state shardings); nothing materialised."""
  dummy = (jnp.ones((1, input_length), jnp.int32),) * num_inputs

  def init_fn(rng, policy=None):
    init_rng, state_rng = jax.random.split(rng)
    params = nn.unbox(model.init(init_rng, *dummy)["params"])
    if policy is not None:
      params = value_params_from_policy(params, policy)
    return TrainState.create(params, tx, state_rng)

  specs = partitioning.logical_param_specs(jax.eval_shape(model.init, jax.random.PRNGKey(0), *dummy)["params"])
  with partitioner.context():
    abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(seed))
  return init_fn, abstract, partitioner.state_shardings(abstract, specs)


def _init_state(init_fn: Callable, abstract: Any, shardings: Any, seed: int, partitioner: partitioning.Partitioner,
                policy_params: Any | None) -> TrainState:
  """The state materialised in its sharded layout; the backbone from `policy_params` (host arrays) if given."""
  rng = jax.random.PRNGKey(seed)
  if policy_params is None:
    with partitioner.context():
      return jax.jit(init_fn, out_shardings=shardings)(rng)
  want = jax.tree.map(lambda a: a.shape, abstract.params["backbone"])
  have = jax.tree.map(lambda a: tuple(np.shape(a)), policy_params)
  if jax.tree.structure(want) != jax.tree.structure(have) or want != have:
    raise ValueError("the policy checkpoint does not match the scorer's T5Config (different shapes or layers)")
  backbone_sh = shardings.params["backbone"]
  policy = jax.tree.map(lambda x, s: jax.make_array_from_callback(x.shape, s, lambda idx, x=x: x[idx]),
                        policy_params, backbone_sh)
  with partitioner.context():
    return jax.jit(init_fn, in_shardings=(partitioner.replicated, backbone_sh), out_shardings=shardings)(rng, policy)


# LOOP

def _label_pairs(task: _Task, pairs: Callable[[str, int], list[Pair]], vocab: Vocabulary, input_length: int,
                 num_train_pairs: int, num_eval_pairs: int, batch_size: int,
                 seed: int) -> tuple[PairBatches, PairBatches]:
  """(train, eval) batches of `pairs(split, n)`, judge-labelled pairs of the disjoint "train" and "eval" streams."""
  train, evals = (PairBatches(task.make_arrays(pairs(split, n), vocab, input_length), batch_size, seed)
                  for n, split in ((num_train_pairs, "train"), (num_eval_pairs, "eval")))
  labels = train.arrays["label"]
  log.info("%s model data: %d train rows (%.0f%% decisive, mean label %.3f), %d eval rows", task.kind, train.size,
           100 * np.mean(np.abs(labels - 0.5) > steps.TIE_TOLERANCE), labels.mean(), evals.size)
  return train, evals


def _restore_or_init(ckpt: Checkpointer, fingerprint: dict[str, Any], init_fn: Callable, abstract: Any,
                     state_sh: Any, seed: int, partitioner: partitioning.Partitioner,
                     init_checkpoint: str | None) -> tuple[TrainState, int]:
  """(state, first step): the latest checkpoint if there is one (same setup only), else a fresh sharded init."""
  if ckpt.latest_step() is None:
    policy = load_params(init_checkpoint) if init_checkpoint else None
    if policy is not None and "value_head" in policy:  # a value/scorer checkpoint: take its backbone
      policy = policy["backbone"]
    return _init_state(init_fn, abstract, state_sh, seed, partitioner, policy), 0
  state, meta = ckpt.restore(restore_target(abstract, state_sh))
  written = {k: meta.get(k) for k in fingerprint}
  if written != json.loads(json.dumps(fingerprint)):
    raise CheckpointError(f"{ckpt.directory} was written by a different model/data setup: {written}")
  log.info("resumed from %s at step %d", ckpt.directory, int(meta["data_position"]))
  return state, int(meta["data_position"])


def _train_scorer(task: _Task, model_dir: str, model_config: T5Config, *,
                  optimizer: tuple[optax.GradientTransformation, optax.Schedule], mesh_spec: partitioning.MeshSpec,
                  judge: Judge | None, init_checkpoint: str | None, num_steps: int, batch_size: int,
                  input_length: int, num_train_pairs: int, num_eval_pairs: int, data_seed: int, seed: int,
                  log_every: int, eval_every: int, save_every: int, keep_checkpoints: int, vocab_path: str | None,
                  pair_source: str, policy_checkpoint: str | None, pair_sampling: PairSampling) -> dict[str, float]:
  pair_sources.check_source(pair_source, policy_checkpoint)
  os.makedirs(model_dir, exist_ok=True)
  vocab = Vocabulary(vocab_path or DEFAULT_SPM_PATH)
  if vocab.vocab_size > model_config.vocab_size:
    raise ValueError(f"vocabulary has {vocab.vocab_size} pieces but the model's vocab_size is "
                     f"{model_config.vocab_size}")
  policy = (pair_sources.lazy_policy(policy_checkpoint, pair_sampling, model_config, vocab_path)
            if policy_checkpoint else None)
  pairs = functools.partial(pair_sources.source_pairs, pair_source, seed=data_seed,
                            judge=judge or pair_sources.default_judge(pair_source), policy=policy,
                            policy_checkpoint=policy_checkpoint, sampling=pair_sampling, cache_dir=model_dir)
  train, evals = _label_pairs(task, pairs, vocab, input_length, num_train_pairs, num_eval_pairs, batch_size, seed)

  # SET UP MESH, MODEL AND STATE
  partitioner = partitioning.Partitioner(partitioning.make_mesh(mesh_spec), mesh_spec.rules)
  model, (tx, schedule) = task.make_model(model_config), optimizer
  ckpt = Checkpointer(os.path.join(model_dir, "checkpoints"), save_every, keep_checkpoints)
  fingerprint = {"kind": task.kind, "model_config": config_fingerprint(model_config), "input_length": input_length,
                 "data": [num_train_pairs, data_seed, batch_size, seed], "pair_source": pair_source}
  init_fn, abstract, state_sh = _state_layout(model, tx, input_length, seed, partitioner, task.num_inputs)
  state, start = _restore_or_init(ckpt, fingerprint, init_fn, abstract, state_sh, seed, partitioner, init_checkpoint)
  if jax.process_index() == 0:
    _write_json(os.path.join(model_dir, learned.SCORER_FILE),
                {"kind": task.kind, "model_config": learned.config_to_json(model_config),
                 "input_length": input_length, "vocab_path": vocab_path})

  # COMPILE (ahead of time, with the memory report)
  batch_sh = partitioner.batch_shardings(train.batch(0))
  step_fn = partitioner.jit(functools.partial(task.train_step, model=model, tx=tx, schedule=schedule),
                            in_shardings=(state_sh, batch_sh), out_shardings=(state_sh, partitioner.replicated),
                            donate_argnums=0)
  eval_fn = partitioner.jit(functools.partial(task.eval_step, model=model),
                            in_shardings=(state_sh.params, partitioner.batch_shardings(next(evals.in_order()))),
                            out_shardings=partitioner.replicated)
  rows = partitioner.batch_rows(batch_size)  # each process builds only its rows of every batch
  put = lambda b: partitioner.put_process_batch(b, batch_size)
  compiled = step_fn.lower(state, put(train.batch(0, rows))).compile()
  log_compiled_memory(compiled)

  # TRAIN
  writer = MetricsWriter(model_dir)
  bar = progress(num_steps, initial=start, desc=f"{task.kind} model")
  last: dict[str, float] = {}
  try:
    for step in range(start, num_steps):
      state, metrics = compiled(state, put(train.batch(step, rows)))
      done = step + 1
      if done % log_every == 0 or ckpt.should_save(done) or done == num_steps:
        last = check_finite(jax.device_get(metrics), done, ckpt)
        writer.write(done, last)
        bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['accuracy']:.2f}")
      if done % eval_every == 0 and done != num_steps:
        report = scorer_eval.evaluate(eval_fn, state.params, evals, partitioner, task.kind)
        writer.write(done, scorer_eval.scalars(report), prefix="eval")
      ckpt.save(done, state, {"data_position": done, **fingerprint}, force=done == num_steps)
      bar.update(1)

    # HELD-OUT REPORT
    report = {"step": int(jax.device_get(state.step)),
              **scorer_eval.evaluate(eval_fn, state.params, evals, partitioner, task.kind)}
    final = writer.write(report["step"], scorer_eval.scalars(report), prefix="eval")
  finally:
    bar.close()
    ckpt.close()
    writer.close()
  _publish_report(model_dir, report)
  return {**last, **{f"eval_{k}": v for k, v in final.items()}}


def _publish_report(model_dir: str, report: dict[str, Any]) -> None:
  """MODEL_DIR/eval_report.json, and the headline numbers and reliability table in the log."""
  if jax.process_index() == 0:
    _write_json(os.path.join(model_dir, "eval_report.json"), report)
  log.info("%s model held-out (%d rows, %d decisive): accuracy %.3f, ECE %.3f, loss %.4f\n%s", report["kind"],
           report["examples"], report["decisive"], report["accuracy"], report["ece"], report["loss"],
           scorer_eval.format_table(report["reliability"]))
  if "symmetrized" in report:
    log.info("symmetrized (as LearnedPreferenceJudge): accuracy %.3f, ECE %.3f; raw antisymmetry gap %.4f",
             report["symmetrized"]["accuracy"], report["symmetrized"]["ece"], report["antisymmetry_gap"])


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def train_reward_model(model_dir: str, model_config: T5Config, *,
                       optimizer: tuple[optax.GradientTransformation, optax.Schedule],
                       mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), judge: Judge | None = None,
                       init_checkpoint: str | None = None, num_steps: int = 1000, batch_size: int = 32,
                       input_length: int = 512, num_train_pairs: int = 4000, num_eval_pairs: int = 512,
                       data_seed: int = 0, seed: int = 0, log_every: int = 10, eval_every: int = 200,
                       save_every: int = 500, keep_checkpoints: int = 3, vocab_path: str | None = None,
                       pair_source: str = "generated", policy_checkpoint: str | None = None,
                       pair_sampling: PairSampling = PairSampling()) -> dict[str, float]:
  """Bradley-Terry reward model on judge-labelled conversation pairs (soft labels); returns final metrics.

  `init_checkpoint`: a policy (SFT) run's checkpoints directory whose parameters become the backbone (or a
  value/scorer run's, whose backbone is taken). `pair_source` (pair_sources.PAIR_SOURCES): where the pairs come
  from; the sampled ones play `policy_checkpoint` (an SFT run's checkpoints directory) as `pair_sampling` says.
  """
  return _train_scorer(_reward_task(), model_dir, model_config, optimizer=optimizer, mesh_spec=mesh_spec,
                       judge=judge, init_checkpoint=init_checkpoint, num_steps=num_steps, batch_size=batch_size,
                       input_length=input_length, num_train_pairs=num_train_pairs, num_eval_pairs=num_eval_pairs,
                       data_seed=data_seed, seed=seed, log_every=log_every, eval_every=eval_every,
                       save_every=save_every, keep_checkpoints=keep_checkpoints, vocab_path=vocab_path,
                       pair_source=pair_source, policy_checkpoint=policy_checkpoint, pair_sampling=pair_sampling)


def train_preference_model(model_dir: str, model_config: T5Config, *,
                           optimizer: tuple[optax.GradientTransformation, optax.Schedule],
                           mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), judge: Judge | None = None,
                           init_checkpoint: str | None = None, loss_kind: str = "cross_entropy",
                           architecture: str = "siamese",
                           num_steps: int = 1000, batch_size: int = 32, input_length: int = 1024,
                           num_train_pairs: int = 4000, num_eval_pairs: int = 512, data_seed: int = 0,
                           seed: int = 0, log_every: int = 10, eval_every: int = 200, save_every: int = 500,
                           keep_checkpoints: int = 3, vocab_path: str | None = None, pair_source: str = "generated",
                           policy_checkpoint: str | None = None,
                           pair_sampling: PairSampling = PairSampling()) -> dict[str, float]:
  """Direct preference model with the probability regression loss `loss_kind` ("cross_entropy" | "squared",
  rl/losses.py); returns final metrics. `architecture`: "siamese" (models/preference.py: each conversation
  encoded alone, an antisymmetric pair head; the default, it learns at tiny scale) or "joint" (one T5Value reads
  the rendered pair, trained in both orders and symmetrised by the judge). `init_checkpoint`, `pair_source`,
  `policy_checkpoint` and `pair_sampling` as for `train_reward_model`."""
  return _train_scorer(_preference_task(loss_kind, architecture), model_dir, model_config, optimizer=optimizer,
                       mesh_spec=mesh_spec, judge=judge, init_checkpoint=init_checkpoint, num_steps=num_steps,
                       batch_size=batch_size, input_length=input_length, num_train_pairs=num_train_pairs,
                       num_eval_pairs=num_eval_pairs, data_seed=data_seed, seed=seed, log_every=log_every,
                       eval_every=eval_every, save_every=save_every, keep_checkpoints=keep_checkpoints,
                       vocab_path=vocab_path, pair_source=pair_source, policy_checkpoint=policy_checkpoint,
                       pair_sampling=pair_sampling)
