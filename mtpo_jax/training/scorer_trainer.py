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

The loop is training/loop.py's, as SFT's: sharded init (optionally the backbone from a policy checkpoint), orbax resume
with exact data position, ahead-of-time compile with the memory report, JSONL/TensorBoard metrics, progress
bar, a stop on non-finite values before anything is saved. At the end, the held-out accuracy and calibration
(ECE over 10 bins and a reliability table) go to MODEL_DIR/eval_report.json and the log.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Any, Callable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import partitioning
from mtpo_jax.checkpoints import config_fingerprint, load_params
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.preference import T5PairPreference
from mtpo_jax.models.value import T5Value, value_params_from_policy
from mtpo_jax.oracles import learned
from mtpo_jax.rl import scorer_steps as steps
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.training import pair_sources, scorer_eval
from mtpo_jax.training.loop import LoopSettings, TrainLoop, run_steps, write_json
from mtpo_jax.training.metrics import log_compiled_memory
from mtpo_jax.training.pair_sources import PairData
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


# SCORERS: what differs between the two models

@dataclasses.dataclass(frozen=True)
class ScorerSpec:
  """Which judge to train. kind: "reward" (a BT reward model) or "preference" (a direct preference model).
  loss (preference only): the probability regression loss, "cross_entropy" or "squared" (rl/losses.py).
  architecture (preference only): "siamese" (models/preference.py: each conversation encoded alone, an
  antisymmetric pair head; the default, it learns at tiny scale) or "joint" (one T5Value reads the rendered pair,
  trained in both orders and symmetrised by the judge)."""
  kind: str = "reward"
  loss: str = "cross_entropy"
  architecture: str = "siamese"

  def __post_init__(self):
    if self.kind not in ("reward", "preference"):
      raise ValueError(f"unknown scorer kind {self.kind!r}; expected 'reward' or 'preference'")
    if self.loss not in ("cross_entropy", "squared"):
      raise ValueError(f"unknown preference loss {self.loss!r}; expected cross_entropy or squared")
    if self.architecture not in ("siamese", "joint"):
      raise ValueError(f"unknown preference architecture {self.architecture!r}; expected siamese or joint")


@dataclasses.dataclass(frozen=True)
class _Task:
  kind: str  # "reward" | "preference" (joint input) | "pair_preference" (siamese)
  make_arrays: Callable[[Sequence[Pair], Vocabulary, int], Arrays]
  train_step: Callable
  eval_step: Callable
  make_model: Callable[[T5Config], Any] = T5Value
  num_inputs: int = 1  # id arrays the model's __call__ takes


def _task(spec: ScorerSpec) -> _Task:
  if spec.kind == "reward":
    return _Task("reward", reward_arrays, steps.reward_model_train_step, steps.reward_model_eval_step)
  if spec.architecture == "siamese":
    return _Task("pair_preference", reward_arrays,
                 functools.partial(steps.pair_preference_train_step, loss_kind=spec.loss),
                 functools.partial(steps.pair_preference_eval_step, loss_kind=spec.loss), T5PairPreference, 2)
  return _Task("preference", preference_arrays,
               functools.partial(steps.preference_model_train_step, loss_kind=spec.loss),
               functools.partial(steps.preference_model_eval_step, loss_kind=spec.loss))


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


def _initial_backbone(init_checkpoint: str | None, abstract: Any) -> Any | None:
  """Host parameters of a policy (or a scorer's backbone) checkpoint, checked against the scorer's backbone."""
  if not init_checkpoint:
    return None
  policy = load_params(init_checkpoint)
  if "value_head" in policy:  # a value/scorer checkpoint: take its backbone
    policy = policy["backbone"]
  partitioning.check_host_tree(policy, abstract.params["backbone"], "the policy checkpoint does not match the "
                               "scorer's T5Config (different shapes or layers)")
  return policy


def _fresh_state(layout: tuple[Callable, Any, Any], seed: int, partitioner: partitioning.Partitioner,
                 init_checkpoint: str | None) -> TrainState:
  """The state of `_state_layout` materialised sharded, its backbone from `init_checkpoint` if given."""
  init_fn, abstract, state_sh = layout
  backbone = _initial_backbone(init_checkpoint, abstract)
  return partitioner.init_sharded(init_fn, jax.random.PRNGKey(seed), state_sh, backbone,
                                  None if backbone is None else state_sh.params["backbone"])


# LOOP

def _label_pairs(task: _Task, data: PairData, vocab: Vocabulary, input_length: int, batch_size: int, seed: int,
                 pairs: Callable[[str, int], list[Pair]]) -> tuple[PairBatches, PairBatches]:
  """(train, eval) batches of `pairs(split, n)`, judge-labelled pairs of the disjoint "train" and "eval" streams."""
  train, evals = (PairBatches(task.make_arrays(pairs(split, n), vocab, input_length), batch_size, seed)
                  for n, split in ((data.num_train, "train"), (data.num_eval, "eval")))
  labels = train.arrays["label"]
  log.info("%s model data: %d train rows (%.0f%% decisive, mean label %.3f), %d eval rows", task.kind, train.size,
           100 * np.mean(np.abs(labels - 0.5) > steps.TIE_TOLERANCE), labels.mean(), evals.size)
  return train, evals


def train_scorer(model_dir: str, model_config: T5Config, *, scorer: ScorerSpec = ScorerSpec(),
                 optimizer: tuple[optax.GradientTransformation, optax.Schedule],
                 mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), loop: LoopSettings = LoopSettings(),
                 pairs: PairData = PairData(), init_checkpoint: str | None = None,
                 input_length: int = 512) -> dict[str, float]:
  """Trains the judge `scorer` says on `pairs` (module docstring); returns the final train and held-out metrics.

  `init_checkpoint`: a policy (SFT) run's checkpoints directory whose parameters become the backbone (or a
  value/scorer run's, whose backbone is taken). The sampled pair sources play `pairs.policy_checkpoint` with this
  scorer's T5Config (the pipeline gives teacher and judges one config).
  """
  task, seed = _task(scorer), loop.seed
  vocab = pairs.conversation.vocabulary()
  with TrainLoop(model_dir, mesh_spec, save_every=loop.save_every, keep_checkpoints=loop.keep_checkpoints,
                 vocab=vocab, model_config=model_config,
                 fall_back=loop.restore_earlier_if_corrupt) as run:
    run.partitioner.check_batch_size(loop.batch_size, "LoopSettings.batch_size")
    sample = functools.partial(pair_sources.source_pairs, pairs, policy_config=model_config, cache_dir=model_dir)
    train, evals = _label_pairs(task, pairs, vocab, input_length, loop.batch_size, seed, sample)

    # MODEL AND STATE (restored, or initialised in its sharded layout)
    partitioner = run.partitioner
    model, (tx, schedule) = task.make_model(model_config), optimizer
    fingerprint = {"kind": task.kind, "model_config": config_fingerprint(model_config), "input_length": input_length,
                   "data": [pairs.num_train, pairs.seed, loop.batch_size, seed], "pair_source": pairs.source}
    layout = _state_layout(model, tx, input_length, seed, partitioner, task.num_inputs)
    _, abstract, state_sh = layout
    restored = run.restore(abstract, state_sh, fingerprint)
    if restored is not None:
      state, start = restored[0], int(restored[1]["data_position"])
    else:
      state, start = _fresh_state(layout, seed, partitioner, init_checkpoint), 0
    if jax.process_index() == 0:
      write_json(os.path.join(model_dir, learned.SCORER_FILE),
                  {"kind": task.kind, "model_config": learned.config_to_json(model_config),
                   "input_length": input_length, "vocab_path": pairs.conversation.vocab_path})

    # COMPILE (ahead of time, with the memory report)
    batch_sh = partitioner.batch_shardings(train.batch(0))
    step_fn = partitioner.jit(functools.partial(task.train_step, model=model, tx=tx, schedule=schedule),
                              in_shardings=(state_sh, batch_sh), out_shardings=(state_sh, partitioner.replicated),
                              donate_argnums=0)
    eval_fn = partitioner.jit(functools.partial(task.eval_step, model=model),
                              in_shardings=(state_sh.params, partitioner.batch_shardings(next(evals.in_order()))),
                              out_shardings=partitioner.replicated)
    rows = partitioner.batch_rows(loop.batch_size)  # each process builds only its rows of every batch
    put = lambda b: partitioner.put_process_batch(b, loop.batch_size)
    compiled = step_fn.lower(state, put(train.batch(0, rows))).compile()
    log_compiled_memory(compiled)

    # TRAIN, THEN THE HELD-OUT REPORT
    run.start(loop.num_steps, start, f"{task.kind} model")
    evaluate = lambda st: scorer_eval.scalars(scorer_eval.evaluate(eval_fn, st.params, evals, partitioner, task.kind))
    state, last = run_steps(run, state, lambda st, step: compiled(st, put(train.batch(step, rows))), start=start,
                            settings=loop, meta=fingerprint, evaluate=evaluate, evaluate_last=False,
                            postfix=lambda m: {"loss": f"{m['loss']:.3f}", "acc": f"{m['accuracy']:.2f}"})
    report = {"step": int(jax.device_get(state.step)),
              **scorer_eval.evaluate(eval_fn, state.params, evals, partitioner, task.kind)}
    final = run.write(report["step"], scorer_eval.scalars(report), prefix="eval")
  _publish_report(model_dir, report)
  return {**last, **{f"eval_{k}": v for k, v in final.items()}}


def _publish_report(model_dir: str, report: dict[str, Any]) -> None:
  """MODEL_DIR/eval_report.json, and the headline numbers and reliability table in the log."""
  if jax.process_index() == 0:
    write_json(os.path.join(model_dir, "eval_report.json"), report)
  log.info("%s model held-out (%d rows, %d decisive): accuracy %.3f, ECE %.3f, loss %.4f\n%s", report["kind"],
           report["examples"], report["decisive"], report["accuracy"], report["ece"], report["loss"],
           scorer_eval.format_table(report["reliability"]))
  if "symmetrized" in report:
    log.info("symmetrized (as LearnedPreferenceJudge): accuracy %.3f, ECE %.3f; raw antisymmetry gap %.4f",
             report["symmetrized"]["accuracy"], report["symmetrized"]["ece"], report["antisymmetry_gap"])
