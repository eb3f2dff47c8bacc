"""SeqIO tasks and mixtures -> fixed-shape, randomly addressable training batches (the trainers' one data path).

READING. Each data shard s of `data_shards` is read with SeqIO, exactly as T5X reads a task:

    seqio.get_mixture_or_task(name).get_dataset(task_feature_lengths, split, shuffle=False, num_epochs=1,
                                                 shard_info=seqio.ShardInfo(s, data_shards))
    -> seqio.EncDecFeatureConverter(pack=use_packing)

and held as numpy arrays [examples, length] per feature (packed rows when `use_packing`). A mixture is read task
by task (its leaf tasks and `Mixture.get_rate`).

ORDER. Batch i is a pure function of (seed, i), so a resumed run's batch i is the uninterrupted run's batch i
without replaying a stream, and the global batch does not depend on how many processes read it:

  * Row r of a global batch of B rows belongs to shard r // (B / data_shards). A process reads only the shards
    its rows (Partitioner.batch_rows) fall in; with data_shards = 1 every process reads the whole split. Making
    data_shards a multiple of the process count gives each process a disjoint part of the data, and a run on
    2 processes x 4 devices reads the same batches as 1 x 8 when both set the same data_shards.
  * Within a shard, task t's examples are visited in epochs; epoch e is the permutation
    default_rng([seed, e]) for one task in one shard (the order of the trainers before SeqIO) and
    default_rng([seed, e, s, t]) otherwise.
  * Mixtures are stratified, not sampled: each shard's rows of every batch hold a fixed number of rows per task
    (SeqIO's rates, largest remainder over the shard's rows), shuffled within the batch by
    default_rng([seed, i, s]). SeqIO samples a stream (tf.data sample_from_datasets), which cannot be resumed at
    batch i without replaying it; the stratified draw keeps the rates exactly, per batch (docs/data.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Callable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)
Arrays = dict[str, np.ndarray]
PROJECT_TASK_MODULE = "mtpo_tasks.registry"


class TaskDataError(ValueError):
  """A task or mixture that cannot feed a trainer: unknown, empty, or not tokenised as the trainer needs."""


def import_task_modules(modules: Sequence[str] = ()) -> None:
  """Imports the project's task module and `modules` (T5X's MIXTURE_OR_TASK_MODULE): importing registers."""
  for module in (PROJECT_TASK_MODULE, *modules):
    try:
      importlib.import_module(module)
    except ImportError as e:
      raise TaskDataError(f"task module {module!r} could not be imported: {e}") from e


def get_provider(name: str, modules: Sequence[str] = ()):
  """The registered seqio.Task or seqio.Mixture `name`; TaskDataError naming close names otherwise."""
  import seqio
  import_task_modules(modules)
  try:
    return seqio.get_mixture_or_task(name)
  except ValueError:
    known = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
    close = [k for k in known if name.split("_")[0] in k][:8]
    raise TaskDataError(f"mixture_or_task_name {name!r} is not a registered SeqIO task or mixture"
                        f"{'; similar: ' + ', '.join(close) if close else ''} (register it in a module named by "
                        "task_modules)") from None


def leaf_tasks(name: str, modules: Sequence[str] = ()) -> list[tuple[str, float]]:
  """[(task name, rate)] of a mixture (rates as SeqIO computes them, sub-mixtures included), or [(name, 1.0)]."""
  import seqio
  provider = get_provider(name, modules)
  if isinstance(provider, seqio.Mixture):
    rates = [(t.name, float(provider.get_rate(t))) for t in provider.tasks]
    rates = [(n, r) for n, r in rates if r > 0]
    if not rates:
      raise TaskDataError(f"mixture {name!r} has no task with a positive rate")
    return rates
  return [(provider.name, 1.0)]


def sentencepiece_path(name: str, modules: Sequence[str] = (), keys: Sequence[str] = ("inputs", "targets")) -> str:
  """The SentencePiece model file of a task's (or every mixed task's) features `keys`."""
  import seqio
  paths = set()
  for task_name, _ in leaf_tasks(name, modules):
    features = seqio.get_mixture_or_task(task_name).output_features
    for key in keys:
      if key not in features:
        raise TaskDataError(f"task {task_name!r} has no {key!r} feature; this trainer reads {list(keys)}")
      vocab = features[key].vocabulary
      if not isinstance(vocab, seqio.SentencePieceVocabulary):
        raise TaskDataError(f"task {task_name!r} feature {key!r} uses {type(vocab).__name__}; the trainers "
                            "read SentencePieceVocabulary tasks")
      paths.add(vocab.sentencepiece_model_file)
  if len(paths) != 1:
    raise TaskDataError(f"{name!r}: its features use {len(paths)} vocabularies ({', '.join(sorted(paths))}); "
                        "a model reads one")
  return paths.pop()


def read_converted(task_name: str, split: str, task_feature_lengths: Mapping[str, int], shard: int = 0,
                   num_shards: int = 1, use_packing: bool = False) -> Arrays:
  """Every example of one shard of a task split, through SeqIO and EncDecFeatureConverter, as numpy arrays
  {feature: [examples, length]} (encoder_input_tokens, decoder_target_tokens, decoder_input_tokens,
  decoder_loss_weights, and the segment ids and positions when packed)."""
  import seqio
  hide_gpus_from_tensorflow()
  task = seqio.get_mixture_or_task(task_name)
  if split not in task.splits:
    raise TaskDataError(f"task {task_name!r} has no split {split!r}; it has {', '.join(task.splits)}")
  missing = {"inputs", "targets"} - set(task_feature_lengths)
  if missing:
    raise TaskDataError(f"task_feature_lengths needs {sorted(missing)} (got {dict(task_feature_lengths)})")
  ds = task.get_dataset(dict(task_feature_lengths), split=split, shuffle=False, num_epochs=1, use_cached=False,
                        shard_info=seqio.ShardInfo(shard, num_shards) if num_shards > 1 else None)
  ds = seqio.EncDecFeatureConverter(pack=use_packing)(ds, dict(task_feature_lengths))
  chunks: dict[str, list[np.ndarray]] = {}
  for batch in _numpy_examples(ds.batch(4096), task_name, split):
    for key, value in batch.items():
      chunks.setdefault(key, []).append(value)
  if not chunks:
    raise TaskDataError(f"task {task_name!r} split {split!r} shard {shard} of {num_shards} holds no examples"
                        f"{' (fewer examples than data_shards)' if num_shards > 1 else ''}")
  arrays = {k: np.concatenate(v) for k, v in chunks.items()}
  arrays["decoder_loss_weights"] = arrays["decoder_loss_weights"].astype(np.float32)
  return {k: (v if k == "decoder_loss_weights" else v.astype(np.int32)) for k, v in arrays.items()}


def feature_lengths(output_features, task_feature_lengths: Mapping[str, int]) -> dict[str, int]:
  """Lengths of every tokenised feature: its own entry, else the "inputs" entry for "inputs_*" features."""
  lengths = {}
  for key in output_features:
    if key in task_feature_lengths:
      lengths[key] = task_feature_lengths[key]
    elif key.startswith("inputs") and "inputs" in task_feature_lengths:
      lengths[key] = task_feature_lengths["inputs"]
    else:
      raise TaskDataError(f"task_feature_lengths has no length for feature {key!r} (got "
                          f"{dict(task_feature_lengths)})")
  return lengths


def read_padded(task_name: str, split: str, task_feature_lengths: Mapping[str, int], shard: int = 0,
                num_shards: int = 1) -> Arrays:
  """Every example of one shard of a task split through SeqIO, without a feature converter: each tokenised
  feature padded to its length ([examples, length] int32, `feature_lengths`), numeric features as they are
  ([examples] float32). What the scorers read (pairs of conversations and a label)."""
  import seqio
  hide_gpus_from_tensorflow()
  task = seqio.get_mixture_or_task(task_name)
  if split not in task.splits:
    raise TaskDataError(f"task {task_name!r} has no split {split!r}; it has {', '.join(task.splits)}")
  lengths = feature_lengths(task.output_features, task_feature_lengths)
  ds = task.get_dataset(lengths, split=split, shuffle=False, num_epochs=1, use_cached=False,
                        shard_info=seqio.ShardInfo(shard, num_shards) if num_shards > 1 else None)
  rows: dict[str, list] = {}
  for example in _numpy_examples(ds, task_name, split):
    for key, value in example.items():
      if key.endswith("_pretokenized"):
        continue
      if key in lengths:
        padded = np.zeros(lengths[key], np.int32)
        padded[:len(value)] = value
        value = padded
      rows.setdefault(key, []).append(value)
  if not rows:
    raise TaskDataError(f"task {task_name!r} split {split!r} shard {shard} of {num_shards} holds no examples")
  return {k: np.stack(v).astype(np.int32 if k in lengths else np.float32) for k, v in rows.items()}


def _numpy_examples(ds, task_name: str, split: str):
  """Iterates a tf.data dataset as numpy; a source's exception (wrapped by TensorFlow) as a TaskDataError."""
  try:
    yield from ds.as_numpy_iterator()
  except Exception as e:  # tf.errors.OpError
    if not type(e).__module__.startswith("tensorflow"):
      raise
    detail = [line for line in str(e).splitlines() if line.strip()]
    raise TaskDataError(f"reading task {task_name!r} split {split!r}: {detail[0] if detail else type(e).__name__}"
                        ) from e


def hide_gpus_from_tensorflow() -> None:
  """tf.data runs on the host: TensorFlow must not claim the accelerator memory JAX allocates."""
  import tensorflow as tf
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TensorFlow's devices were initialised already (and so chosen) earlier in this process
    pass


def rows_per_task(rates: Sequence[float], rows: int) -> list[int]:
  """Largest-remainder split of `rows` by `rates` (ties to the earlier task); every count sums to `rows`."""
  total = float(sum(rates))
  exact = [rows * r / total for r in rates]
  counts = [int(np.floor(x)) for x in exact]
  order = sorted(range(len(rates)), key=lambda t: (-(exact[t] - counts[t]), t))
  for t in order[:rows - sum(counts)]:
    counts[t] += 1
  return counts


def _num_rows(arrays: Arrays) -> int:
  return len(next(iter(arrays.values())))


@dataclasses.dataclass(frozen=True)
class TaskFeed:
  """What a trainer reads: a task or mixture, its feature lengths (T5X's names and meaning) and one split."""
  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  split: str = "train"
  use_packing: bool = False
  data_shards: int = 1
  task_modules: tuple[str, ...] = ()

  def __post_init__(self):
    if self.data_shards < 1:
      raise TaskDataError(f"data_shards must be >= 1, got {self.data_shards}")
    for key, length in self.task_feature_lengths.items():
      if not isinstance(length, int) or length < 2:
        raise TaskDataError(f"task_feature_lengths[{key!r}] = {length!r}: expected an int >= 2")


class TaskBatches:
  """Global batches of `batch_size` rows of a TaskFeed; `batch(i, rows)` builds only rows `rows` (this process's
  block of the global batch) and reads only the shards they fall in. See the module docstring for the order."""

  def __init__(self, feed: TaskFeed, batch_size: int, seed: int = 0,
               reader: Callable[..., Arrays] = read_converted):
    if batch_size <= 0:
      raise TaskDataError(f"batch_size must be positive, got {batch_size}")
    if batch_size % feed.data_shards:
      raise TaskDataError(f"data_shards = {feed.data_shards} must divide the batch size {batch_size}: each shard "
                          "fills an equal block of rows")
    self.feed, self.batch_size, self.seed, self._reader = feed, batch_size, seed, reader
    self.tasks = leaf_tasks(feed.mixture_or_task_name, feed.task_modules)
    self.shard_rows = batch_size // feed.data_shards
    self.counts = rows_per_task([r for _, r in self.tasks], self.shard_rows)
    starved = [n for (n, _), c in zip(self.tasks, self.counts) if c == 0]
    if starved:
      raise TaskDataError(f"mixture {feed.mixture_or_task_name!r}: {self.shard_rows} rows per shard and batch "
                          f"leave no row for {', '.join(starved)} at their rates; raise the batch size or rates")
    self._shards: dict[int, list[Arrays]] = {}

  def shard(self, s: int) -> list[Arrays]:
    """Arrays of shard `s`, one entry per task (read on first use)."""
    if s not in self._shards:
      f = self.feed
      self._shards[s] = [self._reader(name, f.split, f.task_feature_lengths, s, f.data_shards, f.use_packing)
                         for name, _ in self.tasks]
      log.info("%s/%s shard %d of %d: %s rows", f.mixture_or_task_name, f.split, s + 1, f.data_shards,
               ", ".join(str(_num_rows(a)) for a in self._shards[s]))
    return self._shards[s]

  def num_examples(self, s: int = 0) -> int:
    return sum(_num_rows(a) for a in self.shard(s))

  def _key(self, epoch: int, s: int, t: int) -> list[int]:
    if self.feed.data_shards == 1 and len(self.tasks) == 1:
      return [self.seed, epoch]
    return [self.seed, epoch, s, t]

  def _shard_block(self, index: int, s: int) -> list[tuple[int, int]]:
    """[(task, example)] filling shard s's rows of batch `index`, in row order."""
    picks = []
    for t, count in enumerate(self.counts):
      n = _num_rows(self.shard(s)[t])
      positions = range(index * count, (index + 1) * count)
      orders = {e: np.random.default_rng(self._key(e, s, t)).permutation(n) for e in {p // n for p in positions}}
      picks += [(t, int(orders[p // n][p % n])) for p in positions]
    if len(self.tasks) > 1:
      picks = [picks[k] for k in np.random.default_rng([self.seed, index, s]).permutation(len(picks))]
    return picks

  def batch(self, index: int, rows: slice | None = None) -> Arrays:
    """Global batch `index` (a pure function of (seed, index)), or only its rows `rows`."""
    wanted = range(self.batch_size)[rows] if rows is not None else range(self.batch_size)
    blocks: dict[int, list[tuple[int, int]]] = {}
    out: dict[str, list[np.ndarray]] = {}
    for r in wanted:
      s, k = divmod(r, self.shard_rows)
      if s not in blocks:
        blocks[s] = self._shard_block(index, s)
      t, e = blocks[s][k]
      for key, value in self.shard(s)[t].items():
        out.setdefault(key, []).append(value[e])
    return {k: np.stack(v) for k, v in out.items()}
