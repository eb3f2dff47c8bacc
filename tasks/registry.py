"""Registers every SeqIO task and maps a task name to its Python examples (for mtpo-inspect)."""

from __future__ import annotations

import functools
from typing import Iterator

import seqio
import tensorflow as tf

from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_tasks import education_dialogue, negotiation


@functools.lru_cache(maxsize=1)
def _token_counter():
  vocab = Vocabulary(DEFAULT_SPM_PATH)
  return lambda text: len(vocab.encode(text))


def input_length(task: str) -> int:
  """The inputs feature length the task's examples are budgeted for."""
  for kind in education_dialogue.KINDS:
    if task.startswith("education_dialogue_") and task.endswith(kind):
      return education_dialogue.input_length(kind)
  return 512


def python_examples(task: str, split: str, max_input_tokens: int | None = None) -> Iterator[dict]:
  for config in education_dialogue.CONFIGS:
    for kind in education_dialogue.KINDS:
      if task == education_dialogue.task_name(config, kind):
        return education_dialogue.examples(config, kind, split, max_input_tokens)
  for kind in negotiation.KINDS:
    if task == negotiation.task_name(kind):
      return negotiation.examples(kind, split, (max_input_tokens or 512) - 1, _token_counter())
  raise KeyError(f"unknown task {task!r}")


def _negotiation_dataset_fn(kind: str):
  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed
    gen = lambda: ({k: e[k] for k in ("inputs", "targets", "id")}
                   for e in negotiation.examples(kind, split, 511, _token_counter()))
    return tf.data.Dataset.from_generator(gen, output_signature={k: tf.TensorSpec((), tf.string)
                                                                for k in ("inputs", "targets", "id")})
  return dataset_fn


def register_negotiation() -> None:
  vocab = seqio.SentencePieceVocabulary(DEFAULT_SPM_PATH, extra_ids=0)
  features = {"inputs": seqio.Feature(vocab, add_eos=True), "targets": seqio.Feature(vocab, add_eos=True)}
  for kind in negotiation.KINDS:
    name = negotiation.task_name(kind)
    if name not in seqio.TaskRegistry.names():
      seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(_negotiation_dataset_fn(kind),
                                                                   splits=["train", "validation"]),
                             output_features=features,
                             preprocessors=[seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                                            seqio.preprocessors.append_eos_after_trim],
                             metric_fns=[])


register_negotiation()
