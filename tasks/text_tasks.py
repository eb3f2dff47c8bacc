"""Text-to-text SeqIO tasks over Python examples, and the project's parametrised SFT tasks.

`register_text_task` is the few lines a task needs: a function from split to {"inputs", "targets"} text
examples becomes a seqio.FunctionDataSource, tokenised with one SentencePiece model, inputs trimmed from the
left (`trim_inputs_left`: the newest turns of a dialogue matter most) and EOS kept on both features. The
trainers read any such task, or any other SeqIO task with "inputs" and "targets", through data/task_data.py.

The SFT tasks of the pipeline are parametrised (their data directory, size and vocabulary are a run's), so they
are registered by Gin-callable factories that return the task name:

    train_sft.mixture_or_task_name = @education_sft_task()
    education_sft_task.data_dir = '/runs/pipeline/data/education'

    education_sft_task  -> education_dialogue_{generated|files}_{teacher|student}_sft
    negotiation_sft_task -> negotiation_{generated|files}_seller_sft
    toy_teacher_task    -> toy_teacher_sft

A factory called again with other arguments replaces its task in this process's registry. SeqIO and TensorFlow
are imported when a task is registered, not with this module, so Gin can name the factories in any process.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH

TEXT_KEYS = ("inputs", "targets")
SPLITS = ("train", "validation")
_PARAMETERS: dict[str, tuple] = {}


def trim_inputs_left(dataset, output_features, sequence_length=None):
  """Keeps the last tokens of "inputs" (and of every "inputs_*" feature) that fit its feature length, less one
  for EOS when the feature adds it, so the EOS that append_eos_after_trim adds follows the newest context
  rather than cutting it off."""
  keep = {k: n - int(output_features[k].add_eos) for k, n in (sequence_length or {}).items()
          if k.startswith("inputs") and k in output_features and n is not None}
  if not keep:
    return dataset
  import tensorflow as tf

  def trim(example):
    example = dict(example)
    for key, n in keep.items():
      example[key] = example[key][-n:]
    return example
  return dataset.map(trim, num_parallel_calls=tf.data.AUTOTUNE)


def text_features(vocab_path: str = DEFAULT_SPM_PATH, keys: Sequence[str] = TEXT_KEYS) -> dict:
  import seqio
  vocab = seqio.SentencePieceVocabulary(vocab_path, extra_ids=0)
  return {k: seqio.Feature(vocab, add_eos=True) for k in keys}


def text_preprocessors() -> list:
  """tokenize -> (cache point) -> trim inputs from the left -> trim targets and append EOS."""
  import seqio
  return [seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(), trim_inputs_left,
          seqio.preprocessors.append_eos_after_trim]


def register_text_task(name: str, examples: Callable[[str], Iterable[dict]], vocab_path: str = DEFAULT_SPM_PATH,
                       splits: Sequence[str] = SPLITS) -> str:
  """Registers (or replaces) task `name` whose split `s` is `examples(s)`: dicts with text "inputs" and
  "targets" (other keys are dropped). Returns `name`."""
  import seqio
  import tensorflow as tf

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
    del shuffle_files, seed  # the examples' own order; the trainers order batches (data/task_data.py)
    rows = lambda: ({k: e[k] for k in TEXT_KEYS} for e in examples(split))
    return tf.data.Dataset.from_generator(rows, output_signature={k: tf.TensorSpec((), tf.string)
                                                                  for k in TEXT_KEYS})
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(dataset_fn, splits=list(splits)),
                         output_features=text_features(vocab_path), preprocessors=text_preprocessors(),
                         metric_fns=[])
  return name


def register_pair_task(name: str, examples: Callable[[str], Iterable[dict]], text_keys: Sequence[str],
                       vocab_path: str = DEFAULT_SPM_PATH, splits: Sequence[str] = SPLITS) -> str:
  """Registers (or replaces) a judge-training task `name`: split `s` is `examples(s)`, dicts with the text
  features `text_keys` (every one an "inputs*" name: tokenised, trimmed from the left, EOS) and float "label"
  (P(a better than b)), plus "label_reversed" when given. The scorers read it (data/task_data.read_padded)."""
  import seqio
  import tensorflow as tf
  if not all(k.startswith("inputs") for k in text_keys):
    raise ValueError(f"pair task text features must be named inputs*, got {list(text_keys)}")
  numeric = ("label", "label_reversed")

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
    del shuffle_files, seed
    rows = list(examples(split))
    floats = [k for k in numeric if rows and k in rows[0]]
    signature = {**{k: tf.TensorSpec((), tf.string) for k in text_keys},
                 **{k: tf.TensorSpec((), tf.float32) for k in floats}}
    return tf.data.Dataset.from_generator(lambda: ({k: e[k] for k in signature} for e in rows),
                                          output_signature=signature)
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(dataset_fn, splits=list(splits)),
                         output_features=text_features(vocab_path, text_keys), preprocessors=text_preprocessors(),
                         metric_fns=[])
  return name


def _register_once(name: str, parameters: tuple, make_examples: Callable[[str], Iterable[dict]],
                   vocab_path: str) -> str:
  """Registers `name` unless it is registered with `parameters` already. Both splits are built here, so a bad
  data file or vocabulary raises its own clear error now, not from inside a tf.data generator."""
  import seqio
  if _PARAMETERS.get(name) != parameters or name not in seqio.TaskRegistry.names():
    built = {split: tuple(make_examples(split)) for split in SPLITS}
    register_text_task(name, built.__getitem__, vocab_path)
    _PARAMETERS[name] = parameters
  return name


def _record_split(split: str) -> str:
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
  return "train" if split == "train" else "eval"


def education_sft_task(role: str = "teacher", data_dir: str | None = None, num_train: int = 4000,
                       num_eval: int = 200, seed: int = 0, max_input_tokens: int = 255,
                       vocab_path: str | None = None) -> str:
  """Teacher (or student) SFT on Education Dialogue records: the released-format files in `data_dir`
  (`mtpo-data generate` or the released files), or generated by `seed`; the first `num_train` / `num_eval`
  records of the train / eval files. Inputs are budgeted to `max_input_tokens` tokens of the vocabulary."""
  from mtpo_jax.data import education_examples
  vocab = vocab_path or DEFAULT_SPM_PATH
  name = f"education_dialogue_{'files' if data_dir else 'generated'}_{role}_sft"
  params = (role, data_dir, num_train, num_eval, seed, max_input_tokens, vocab)

  def examples(split: str) -> list[dict]:
    records_split = _record_split(split)
    num = num_train if records_split == "train" else num_eval
    return education_examples.sft_examples(role, records_split, num, seed, max_input_tokens, data_dir, vocab)
  return _register_once(name, params, examples, vocab)


def negotiation_sft_task(data_dir: str | None = None, num_train: int = 2000, num_eval: int = 100, seed: int = 0,
                         max_input_tokens: int = 255, vocab_path: str | None = None) -> str:
  """Seller SFT on negotiation records: `data_dir`/negotiation_{train,eval}.json, or generated by `seed`."""
  from mtpo_jax.data import negotiation_examples
  vocab = vocab_path or DEFAULT_SPM_PATH
  name = f"negotiation_{'files' if data_dir else 'generated'}_seller_sft"
  params = (data_dir, num_train, num_eval, seed, max_input_tokens, vocab)

  def examples(split: str) -> list[dict]:
    records_split = _record_split(split)
    num = num_train if records_split == "train" else num_eval
    return negotiation_examples.seller_sft_examples(records_split, num, seed, max_input_tokens, data_dir, vocab)
  return _register_once(name, params, examples, vocab)


def toy_teacher_task(num_train: int = 4000, num_eval: int = 256, seed: int = 0) -> str:
  """The generated teacher-reply corpus (data/toy_teacher.py); eval draws from seed + 10,000."""
  from mtpo_jax.data import toy_teacher

  def examples(split: str) -> list[dict]:
    pairs = (toy_teacher.generate(num_train, seed) if _record_split(split) == "train"
             else toy_teacher.generate(num_eval, seed + 10_000))
    return [{"inputs": i, "targets": t} for i, t in pairs]
  return _register_once("toy_teacher_sft", (num_train, num_eval, seed), examples, DEFAULT_SPM_PATH)
