"""Registers every static SeqIO task and mixture of the project (the parametrised SFT tasks of the pipeline are
registered by their factories, text_tasks.py) and maps a task name to its Python examples."""

from __future__ import annotations

import functools
from typing import Iterator

import seqio
import tensorflow as tf

from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_tasks import education_dialogue, negotiation, text_tasks


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
    keys = ("inputs", "targets", "id") + (("context",) if kind == "rl_contexts" else ())
    gen = lambda: ({k: e[k] for k in keys} for e in negotiation.examples(kind, split, 511, _token_counter()))
    return tf.data.Dataset.from_generator(gen, output_signature={k: tf.TensorSpec((), tf.string) for k in keys})
  return dataset_fn


def register_negotiation() -> None:
  features = text_tasks.text_features(DEFAULT_SPM_PATH)
  for kind in negotiation.KINDS:
    name = negotiation.task_name(kind)
    if name not in seqio.TaskRegistry.names():
      seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(_negotiation_dataset_fn(kind),
                                                                   splits=["train", "validation"]),
                             output_features=features, preprocessors=text_tasks.text_preprocessors(),
                             metric_fns=[])


# Teacher SFT on Education Dialogue mixed with seller SFT on negotiations, three rows to one: one policy model
# for both dialogue settings (experiments/sft_mixture_tiny.gin trains the tiny T5 on it).
SFT_MIXTURE = "dialogue_sft_mixture"
SFT_MIXTURE_RATES = {education_dialogue.task_name("synthetic_small", "teacher_sft"): 3.0,
                     negotiation.task_name("seller_sft"): 1.0}


def register_mixtures() -> None:
  if SFT_MIXTURE not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(SFT_MIXTURE, list(SFT_MIXTURE_RATES.items()))


register_negotiation()
register_mixtures()
