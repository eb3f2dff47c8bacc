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
from typing import Any, Callable, Iterator, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import partitioning
from mtpo_jax.data import task_data
from mtpo_jax.data.task_data import TaskBatches, TaskFeed
from mtpo_jax.checkpoints import config_fingerprint, load_params
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.preference import T5PairPreference
from mtpo_jax.models.value import T5Value, value_params_from_policy
from mtpo_jax.oracles import learned
from mtpo_jax.rl import scorer_steps as steps
from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_jax.training import pair_sources, scorer_eval
from mtpo_jax.training.loop import LoopSettings, TrainLoop, run_steps, write_json
from mtpo_jax.training.metrics import log_compiled_memory
from mtpo_jax.training.pair_sources import PairData
from mtpo_jax.training.state import TrainState

log = logging.getLogger(__name__)
Pair = pair_sources.Pair
Arrays = dict[str, np.ndarray]


# DATA: the pairs become a SeqIO task, read as every trainer reads its task (data/task_data.py)

PAIR_TEXT_KEYS = {"reward": ("inputs_a", "inputs_b"), "pair_preference": ("inputs_a", "inputs_b"),
                  "preference": ("inputs", "inputs_reversed")}
PAIR_TASK = "train_scorer_pairs"  # the run's own pairs (PairData), registered in this process


def pair_examples(pairs: Sequence[Pair], vocab: Vocabulary, input_length: int, kind: str) -> list[dict]:
  """The text rows of a judge-training task: each conversation rendered for a reward model ("inputs_a",
  "inputs_b"), or the pair rendered in both orders for a joint preference model ("inputs", "inputs_reversed"),
  as oracles/learned.py renders them at rollout time; "label" = P(a > b) and "label_reversed" = 1 - it."""
  a, b, p = zip(*pairs)
  if kind == "preference":
    texts = (learned.preference_model_inputs(a, b, vocab, input_length),
             learned.preference_model_inputs(b, a, vocab, input_length))
  else:
    texts = (learned.reward_model_inputs(a, vocab, input_length), learned.reward_model_inputs(b, vocab, input_length))
  keys = PAIR_TEXT_KEYS[kind]
  return [{keys[0]: x, keys[1]: y, "label": float(q), "label_reversed": 1.0 - float(q)}
          for x, y, q in zip(*texts, p)]


def scorer_arrays(kind: str, rows: Arrays) -> Arrays:
  """Rows read from a pair task -> the arrays a scorer step takes: ids_a, ids_b [N, S] and label [N]; or, for
  the joint preference model, ids [2N, S] and label [2N] with row 2i = (a, b) -> p, row 2i+1 = (b, a) -> 1 - p."""
  keys = PAIR_TEXT_KEYS[kind]
  missing = [k for k in (*keys, "label") if k not in rows]
  if missing:
    raise ValueError(f"a {kind} scorer reads pair tasks with features {[*keys, 'label']}; missing {missing}")
  if kind != "preference":
    return {"ids_a": rows[keys[0]], "ids_b": rows[keys[1]], "label": rows["label"]}
  reversed_label = rows.get("label_reversed", 1.0 - rows["label"])
  interleave = lambda x, y: np.stack([x, y], axis=1).reshape(-1, *x.shape[1:])
  return {"ids": interleave(rows[keys[0]], rows[keys[1]]), "label": interleave(rows["label"], reversed_label)}


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


class EvalPairs:
  """Held-out rows in order, for the scorers' report: every row once, the last batch padded with weight-0
  copies of row 0."""

  def __init__(self, arrays: Arrays, batch_size: int):
    self.arrays, self.batch_size = arrays, batch_size
    self.size = len(arrays["label"])
    if not self.size:
      raise ValueError("scorer evaluation data is empty")

  def in_order(self) -> Iterator[Arrays]:
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
  train_step: Callable
  eval_step: Callable
  make_model: Callable[[T5Config], Any] = T5Value
  num_inputs: int = 1  # id arrays the model's __call__ takes


def _task(spec: ScorerSpec) -> _Task:
  if spec.kind == "reward":
    return _Task("reward", steps.reward_model_train_step, steps.reward_model_eval_step)
  if spec.architecture == "siamese":
    return _Task("pair_preference", functools.partial(steps.pair_preference_train_step, loss_kind=spec.loss),
                 functools.partial(steps.pair_preference_eval_step, loss_kind=spec.loss), T5PairPreference, 2)
  return _Task("preference", functools.partial(steps.preference_model_train_step, loss_kind=spec.loss),
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
  key = jax.random.PRNGKey(seed)  # outside the mesh context: an eager op there fails on a compile-only mesh
  with partitioner.context():
    abstract = jax.eval_shape(init_fn, key)
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

def register_run_pairs(task: _Task, data: PairData, vocab_path: str, input_length: int,
                       pairs: Callable[[str, int], list[Pair]]) -> str:
  """Registers PAIR_TASK over `pairs(split, n)`, judge-labelled pairs of the disjoint "train" and "eval"
  streams (SeqIO splits "train" and "validation"); returns its name."""
  from mtpo_tasks.text_tasks import register_pair_task
  vocab = Vocabulary(vocab_path)
  rows = {"train": pair_examples(pairs("train", data.num_train), vocab, input_length, task.kind),
          "validation": pair_examples(pairs("eval", data.num_eval), vocab, input_length, task.kind)}
  return register_pair_task(PAIR_TASK, rows.__getitem__, PAIR_TEXT_KEYS[task.kind], vocab_path)


def _read_pairs(task: _Task, feed: TaskFeed, batch_size: int, seed: int,
                eval_split: str) -> tuple[TaskBatches, EvalPairs]:
  """(train batches, eval batches) of a pair task; evaluation reads its whole split in order."""
  def reader(name, split, lengths, shard, num_shards, use_packing=False):
    if use_packing:
      raise ValueError("the scorers read pairs unpacked")
    return scorer_arrays(task.kind, task_data.read_padded(name, split, lengths, shard, num_shards))
  train = TaskBatches(feed, batch_size, seed, reader=reader)
  evals = EvalPairs(reader(feed.mixture_or_task_name, eval_split, feed.task_feature_lengths, 0, 1), batch_size)
  labels = train.shard(0)[0]["label"]
  log.info("%s model data: %d train rows in shard 1 of %d (%.0f%% decisive, mean label %.3f), %d eval rows",
           task.kind, len(labels), feed.data_shards, 100 * np.mean(np.abs(labels - 0.5) > steps.TIE_TOLERANCE),
           labels.mean(), evals.size)
  return train, evals


def train_scorer(model_dir: str, model_config: T5Config, *, scorer: ScorerSpec = ScorerSpec(),
                 optimizer: tuple[optax.GradientTransformation, optax.Schedule],
                 mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), loop: LoopSettings = LoopSettings(),
                 pairs: PairData = PairData(), init_checkpoint: str | None = None,
                 mixture_or_task_name: str | None = None, task_feature_lengths: Mapping[str, int] | None = None,
                 train_split: str = "train", eval_split: str = "validation", data_shards: int = 1,
                 task_modules: Sequence[str] = ()) -> dict[str, float]:
  """Trains the judge `scorer` says (module docstring); returns the final train and held-out metrics.

  Data: the SeqIO pair task `mixture_or_task_name` (features PAIR_TEXT_KEYS[kind] and "label"; `task_modules`
  imported first), or, when it is None, the run's own `pairs` (PairData), registered as the task PAIR_TASK.
  `task_feature_lengths` {"inputs": S} (default 512) cuts every "inputs*" feature. `init_checkpoint`: a policy
  (SFT) run's checkpoints directory whose parameters become the backbone (or a value/scorer run's, whose
  backbone is taken). The sampled pair sources play `pairs.policy_checkpoint` with this scorer's T5Config (the
  pipeline gives teacher and judges one config).
  """
  task, seed = _task(scorer), loop.seed
  lengths = dict(task_feature_lengths or {"inputs": 512})
  input_length = lengths.get("inputs", 0)
  if input_length < 2:
    raise ValueError(f"train_scorer.task_feature_lengths needs an 'inputs' length >= 2, got {lengths}")
  vocab_path = (task_data.sentencepiece_path(mixture_or_task_name, task_modules, keys=PAIR_TEXT_KEYS[task.kind])
                if mixture_or_task_name else pairs.conversation.vocab_path or DEFAULT_SPM_PATH)
  vocab = Vocabulary(vocab_path)
  with TrainLoop(model_dir, mesh_spec, save_every=loop.save_every, keep_checkpoints=loop.keep_checkpoints,
                 vocab=vocab, model_config=model_config,
                 fall_back=loop.restore_earlier_if_corrupt) as run:
    run.partitioner.check_batch_size(loop.batch_size, "LoopSettings.batch_size")
    if mixture_or_task_name is None:
      sample = functools.partial(pair_sources.source_pairs, pairs, policy_config=model_config, cache_dir=model_dir)
      name = register_run_pairs(task, pairs, vocab_path, input_length, sample)
    else:
      name = mixture_or_task_name
    feed = TaskFeed(name, lengths, train_split, data_shards=data_shards, task_modules=tuple(task_modules))
    train, evals = _read_pairs(task, feed, loop.batch_size, seed, eval_split)

    # MODEL AND STATE (restored, or initialised in its sharded layout)
    partitioner = run.partitioner
    model, (tx, schedule) = task.make_model(model_config), optimizer
    fingerprint = {"kind": task.kind, "model_config": config_fingerprint(model_config), "input_length": input_length,
                   "data": [pairs.num_train, pairs.seed, loop.batch_size, seed],
                   "pair_source": mixture_or_task_name or pairs.source}
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
                   "input_length": input_length,
                   "vocab_path": vocab_path if mixture_or_task_name else pairs.conversation.vocab_path})

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
