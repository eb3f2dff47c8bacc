"""SeqIO tasks over the `education_dialogue` TFDS builder (one set per builder config).

    education_dialogue_<config>_teacher_sft    topic + history -> next teacher turn (no hidden preference)
    education_dialogue_<config>_student_sft    background + history -> next student turn
    education_dialogue_<config>_rl_contexts    teacher prompt of an empty conversation -> background (JSON)
    education_dialogue_<config>_conversation_pairs   two conversations on one context -> P(A better) (judge)
    education_dialogue_<config>_single_turn_pairs    prefix + two teacher turns -> P(A better) (judge)

Inputs longer than the feature length lose their oldest turns first, with a marker (dialogue_format); tokens
still over the trainer's feature length are cut from the left (text_tasks.trim_inputs_left).
TFDS data lives under $MTPO_TFDS_DIR (default ~/tensorflow_datasets); `released` configs read the JSON files
from $MTPO_EDUCATION_DIALOGUE_DIR.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Iterator

import seqio
import tensorflow as tf

from mtpo_jax.data import education_examples as ex
from mtpo_jax.data import education_pairs
from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_tasks import text_tasks
from mtpo_tasks.education_dialogue_tfds import load_records

INPUT_LENGTH, TARGET_LENGTH = 512, 128
PAIR_INPUT_LENGTH = 1024  # two whole conversations: half of 512 each would cut every conversation's opening
CONFIGS = ("synthetic", "synthetic_small", "released", "released_skip_bad")
KINDS = ("teacher_sft", "student_sft", "rl_contexts", "conversation_pairs", "single_turn_pairs")
SPLITS = {"train": "train", "validation": "validation"}


def task_name(config: str, kind: str) -> str:
  return f"education_dialogue_{config}_{kind}"


@functools.lru_cache(maxsize=None)
def _records(config: str, split: str) -> tuple:
  return tuple(load_records(config, split, data_dir=os.environ.get("MTPO_TFDS_DIR"),
                            manual_dir=os.environ.get("MTPO_EDUCATION_DIALOGUE_DIR")))


def input_length(kind: str) -> int:
  return PAIR_INPUT_LENGTH if kind == "conversation_pairs" else INPUT_LENGTH


@functools.lru_cache(maxsize=1)
def _vocabulary() -> Vocabulary:
  return Vocabulary(DEFAULT_SPM_PATH)


def examples(config: str, kind: str, split: str, max_input_tokens: int | None = None) -> Iterator[dict]:
  """Python examples {"inputs", "targets", "id", "truncated"} of one task split (also used by mtpo-inspect).
  The token budget leaves room for the EOS that SeqIO appends."""
  if max_input_tokens is None:
    max_input_tokens = input_length(kind)
  max_input_tokens -= 1
  records = _records(config, split)
  vocab = _vocabulary()
  count = lambda text: len(vocab.encode(text))
  if kind == "teacher_sft":
    yield from ex.flat_map(ex.teacher_sft_examples, records, max_input_tokens=max_input_tokens, count_tokens=count)
  elif kind == "student_sft":
    yield from ex.flat_map(ex.student_sft_examples, records, max_input_tokens=max_input_tokens, count_tokens=count)
  elif kind == "rl_contexts":
    yield from (ex.rl_context(r) for r in records)
  elif kind == "conversation_pairs":
    yield from education_pairs.conversation_pairs(records, split, max_input_tokens, count)
  elif kind == "single_turn_pairs":
    yield from education_pairs.single_turn_pairs(records, split, max_input_tokens, count)
  else:
    raise ValueError(f"unknown task kind {kind!r}; expected one of {KINDS}")


def _dataset_fn(config: str, kind: str) -> Callable:
  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed  # examples are generated in a fixed order; shuffle downstream
    keys = ("inputs", "targets", "id") + (("context",) if kind == "rl_contexts" else ())
    gen = lambda: ({k: e[k] for k in keys} for e in examples(config, kind, SPLITS[split]))
    sig = {k: tf.TensorSpec((), tf.string) for k in keys}
    return tf.data.Dataset.from_generator(gen, output_signature=sig)
  return dataset_fn


def register() -> None:
  features = text_tasks.text_features(DEFAULT_SPM_PATH)
  for config in CONFIGS:
    for kind in KINDS:
      name = task_name(config, kind)
      if name in seqio.TaskRegistry.names():
        continue
      seqio.TaskRegistry.add(
          name, source=seqio.FunctionDataSource(_dataset_fn(config, kind), splits=list(SPLITS)),
          output_features=features, preprocessors=text_tasks.text_preprocessors(), metric_fns=[])


register()
