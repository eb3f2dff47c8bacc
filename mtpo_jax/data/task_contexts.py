"""RL start states from a SeqIO task: the "context" feature of the `*_rl_contexts` tasks (one JSON Context per
record), read once through SeqIO and cached as a JSON-lines file, so the RL processes that only need contexts
read the file and never import TensorFlow.

    read_task_contexts(task, split)   SeqIO (the task's source, sharded like any task read) -> [Context]
    write_contexts_file / read_contexts_file   the cache: one Context per line
    contexts_for_iteration(contexts, n, i, seed)   iteration i's n contexts: rows [i n, (i + 1) n) of the epoch
                                                   permutations default_rng([seed, epoch]) (a pure function,
                                                   so a resumed run plays the contexts an uninterrupted one does),
                                                   each id suffixed with its stream position
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import numpy as np

from mtpo_jax import atomic_files
from mtpo_jax.data.task_data import TaskDataError, get_provider, hide_gpus_from_tensorflow
from mtpo_jax.types import Context

CONTEXT_KEY = "context"


def context_to_json(context: Context) -> str:
  return json.dumps(dataclasses.asdict(context), sort_keys=True)


def context_from_json(text: str) -> Context:
  d = json.loads(text)
  return Context(d["context_id"], d["visible"], d["hidden"], d.get("extra", {}))


def read_task_contexts(task: str, split: str = "train", modules: Sequence[str] = ()) -> list[Context]:
  """Every Context of a task split, in the source's order (the raw "context" feature; nothing to tokenise)."""
  import seqio
  hide_gpus_from_tensorflow()
  provider = get_provider(task, modules)
  if not isinstance(provider, seqio.Task):
    raise TaskDataError(f"contexts come from one task; {task!r} is a mixture")
  if split not in provider.splits:
    raise TaskDataError(f"task {task!r} has no split {split!r}; it has {', '.join(provider.splits)}")
  contexts = []
  for row in provider.source.get_dataset(split=split, shuffle=False).as_numpy_iterator():
    if CONTEXT_KEY not in row:
      raise TaskDataError(f"task {task!r} has no {CONTEXT_KEY!r} feature: RL contexts come from the "
                          "*_rl_contexts tasks")
    contexts.append(context_from_json(row[CONTEXT_KEY].decode("utf-8")))
  if not contexts:
    raise TaskDataError(f"task {task!r} split {split!r} holds no contexts")
  return contexts


def write_contexts_file(path: str, contexts: Sequence[Context]) -> None:
  atomic_files.write_text(path, "".join(context_to_json(c) + "\n" for c in contexts))


def read_contexts_file(path: str) -> list[Context]:
  """The contexts of a file `write_contexts_file` wrote; ValueError naming the file and line otherwise."""
  contexts = []
  try:
    with open(path) as f:
      for number, line in enumerate(f, 1):
        try:
          contexts.append(context_from_json(line))
        except (ValueError, KeyError, TypeError) as e:
          raise ValueError(f"{path}:{number}: not a context line ({type(e).__name__}: {e})") from None
  except FileNotFoundError:
    raise FileNotFoundError(f"contexts file {path} does not exist (write it with `mtpo-data contexts`)") from None
  if not contexts:
    raise ValueError(f"contexts file {path} holds no contexts")
  return contexts


def contexts_for_iteration(contexts: Sequence[Context], num: int, iteration: int, seed: int) -> list[Context]:
  """Iteration `iteration`'s `num` contexts (module docstring). Each is renamed "<id>#<stream position>": an
  iteration that spans two epochs may draw one context twice, and context ids name the sampling keys."""
  n = len(contexts)
  positions = range(iteration * num, (iteration + 1) * num)
  orders = {e: np.random.default_rng([seed, e]).permutation(n) for e in {p // n for p in positions}}
  return [dataclasses.replace(contexts[int(orders[p // n][p % n])],
                              context_id=f"{contexts[int(orders[p // n][p % n])].context_id}#{p}") for p in positions]


CACHE_FILE = "contexts_train.jsonl"


@dataclasses.dataclass(frozen=True)
class ContextSource:
  """Where an RL run's training contexts come from: the environment's generated stream (both None;
  envs/registry.contexts), the "train" split of the SeqIO task `task` (an `*_rl_contexts` task; `task_modules`
  imported first), or `file` (written by `mtpo-data contexts`; read without TensorFlow)."""
  task: str | None = None
  file: str | None = None
  task_modules: tuple[str, ...] = ()

  def __post_init__(self):
    if self.task and self.file:
      raise ValueError("ContextSource: give task or file, not both")

  @property
  def name(self) -> str | None:
    return self.task or self.file

  def load(self, model_dir: str) -> list[Context] | None:
    """None for the generated stream. A task is read through SeqIO once: process 0 caches it as
    MODEL_DIR/contexts_train.jsonl, which a resumed run reads."""
    import os
    from mtpo_jax import distributed, run_config
    if self.file:
      return read_contexts_file(self.file)
    if not self.task:
      return None
    cache = os.path.join(model_dir, CACHE_FILE)
    if os.path.exists(cache):
      return read_contexts_file(cache)
    contexts = read_task_contexts(self.task, "train", self.task_modules)
    if distributed.is_primary():
      run_config.accept(model_dir)
      write_contexts_file(cache, contexts)
    return contexts
