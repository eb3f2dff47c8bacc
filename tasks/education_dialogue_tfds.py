"""TFDS builder `education_dialogue`: the released JSON files (config `released`) or generated data (`synthetic`).

    builder = EducationDialogue(config="released", data_dir=...)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir="/path/to/json"))

`released` reads `conversations_train1..5.json` and `conversations_eval.json` from the manual directory and
validates every record first (the same checks as `mtpo-data validate`): with `on_error="raise"` any problem
stops the build before anything is written; with `"skip"` bad records are dropped and counted in the log.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from typing import Any

import tensorflow_datasets as tfds

from mtpo_jax.envs.education.convert import record_id

log = logging.getLogger(__name__)
BACKGROUND_KEYS = ("topic", "student_prefrences", "teacher_prefrences", "student_reactions", "teacher_reactions")


class EducationDialogueConfig(tfds.core.BuilderConfig):
  def __init__(self, *, num_train: int = 40_000, num_eval: int = 7_234, seed: int = 0, on_error: str = "raise",
               **kwargs):
    super().__init__(version=tfds.core.Version("1.0.0"), **kwargs)
    self.num_train, self.num_eval, self.seed, self.on_error = num_train, num_eval, seed, on_error


class EducationDialogue(tfds.core.GeneratorBasedBuilder):
  """Teacher-student conversations with the teacher's and student's attributes."""

  BUILDER_CONFIGS = [
      EducationDialogueConfig(name="released", description="The released JSON files (manual directory)."),
      EducationDialogueConfig(name="released_skip_bad", on_error="skip",
                              description="Released files; malformed records are skipped and counted."),
      EducationDialogueConfig(name="synthetic", description="Generated data at the released split sizes."),
      EducationDialogueConfig(name="synthetic_small", num_train=2_000, num_eval=200,
                              description="A small generated set for tests and the CPU default."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = ("Place conversations_train1.json ... conversations_train5.json and "
                                  "conversations_eval.json (github.com/google-research-datasets/"
                                  "Education-Dialogue-Dataset) in the manual directory.")

  def _info(self) -> tfds.core.DatasetInfo:
    text = tfds.features.Text()
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        "id": text,
        "background_info": tfds.features.FeaturesDict({k: text for k in BACKGROUND_KEYS}),
        "roles": tfds.features.Sequence(text),
        "texts": tfds.features.Sequence(text),
        "ground_truth": text,
    }))

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if cfg.name.startswith("released"):
      from mtpo_jax.envs.education.schema import load_released
      train_files = sorted(glob.glob(os.path.join(dl_manager.manual_dir, "conversations_train*.json")))
      eval_files = [os.path.join(dl_manager.manual_dir, "conversations_eval.json")]
      if not train_files or not os.path.exists(eval_files[0]):
        raise FileNotFoundError(f"{dl_manager.manual_dir}: expected conversations_train*.json and "
                                f"conversations_eval.json. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
      # Validate everything before yielding anything: a bad file never leaves a partial dataset.
      train, train_report = load_released(train_files, on_error=cfg.on_error)
      evals, eval_report = load_released(eval_files, on_error=cfg.on_error)
      log.info("education_dialogue/%s: train %s; eval %s", cfg.name, train_report, eval_report)
    else:
      from mtpo_jax.envs.education import generator
      train = generator.generate(cfg.num_train, cfg.seed, "train")
      evals = generator.generate(cfg.num_eval, cfg.seed, "eval")
    return {"train": self._generate_examples(train), "validation": self._generate_examples(evals)}

  def _generate_examples(self, records):
    seen: dict[str, int] = {}
    for r in records:
      key = record_id(r)
      seen[key] = seen.get(key, 0) + 1
      if seen[key] > 1:  # identical openings on one context: keep keys unique
        key = f"{key}-{seen[key]}"
      yield key, {"id": key, "background_info": {k: r["background_info"][k] for k in BACKGROUND_KEYS},
                  "roles": [t["role"] for t in r["conversation"]], "texts": [t["text"] for t in r["conversation"]],
                  "ground_truth": json.dumps(r.get("ground_truth", {}), sort_keys=True)}


def to_record(example: dict[str, Any]) -> dict[str, Any]:
  """A TFDS example (numpy, bytes) back to the released record format."""
  dec = lambda b: b.decode("utf-8") if isinstance(b, bytes) else str(b)
  record = {"background_info": {k: dec(v) for k, v in example["background_info"].items()},
            "conversation": [{"role": dec(r), "text": dec(t)} for r, t in zip(example["roles"], example["texts"])]}
  truth = json.loads(dec(example["ground_truth"]) or "{}")
  if truth:
    record["ground_truth"] = truth
  return record


def load_records(config: str, split: str, data_dir: str | None = None, manual_dir: str | None = None) -> list[dict]:
  """Prepares (once) and reads a split back as records."""
  builder = EducationDialogue(config=config, data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return [to_record(ex) for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))]
