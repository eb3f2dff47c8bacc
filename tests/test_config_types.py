"""Gin bindings are type-checked against the configurable's hints (config_types.py): a wrong type names the
binding; every binding the project's own Gin files make passes."""

import dataclasses
import glob
import os
from typing import Callable, Literal, Sequence

import gin
import pytest

from mtpo_jax import config_types, gin_registry
from mtpo_jax.config_types import matches
from mtpo_jax.training.loop import LoopSettings


@pytest.mark.parametrize("value, hint, ok", [
    (3, int, True), (True, int, False), (3.0, int, False), ("3", int, False),
    (3, float, True), (2.5, float, True), (False, float, False), ("2.5", float, False),
    (True, bool, True), (1, bool, False),
    ("a", str, True), (None, str, False),
    (None, int | None, True), (4, int | None, True), ("4", int | None, False),
    ("mtpo", Literal["mtpo", "rlhf"], True), ("ppo", Literal["mtpo", "rlhf"], False),
    ((1, 2), tuple[int, ...], True), ([1, 2], tuple[int, ...], True), ((1, "2"), tuple[int, ...], False),
    ((1, "a"), tuple[int, str], True), ((1, 2, 3), tuple[int, str], False),
    (("a", "b"), Sequence[str], True), ("ab", Sequence[str], False),
    ({"a": 1}, dict[str, int], True), ({"a": "1"}, dict[str, int], False), ([("a", 1)], dict[str, int], False),
    (len, Callable, True), (3, Callable, False),
    (LoopSettings(), LoopSettings, True), ("LoopSettings()", LoopSettings, False),
])
def test_matches_by_hand(value, hint, ok):
  assert matches(value, hint) is ok


def test_wrong_type_names_the_binding_and_the_expected_type():
  @dataclasses.dataclass(frozen=True)
  class Settings:
    steps: int = 1
    rate: float = 0.1
    name: str | None = None

  make = config_types.checked(Settings, "Settings")
  assert make(steps=2, rate=1, name="x") == Settings(2, 1, "x")  # an int is a fine float
  with pytest.raises(TypeError, match=r"Settings.steps = 'ten': expected int, got str"):
    make(steps="ten")
  with pytest.raises(TypeError, match=r"Settings.name = 3: expected str \| None, got int"):
    make(name=3)

  def job(a: int, b: Sequence[str] = ()) -> int:
    return a

  checked_job = config_types.checked(job, "job")
  assert checked_job(1, b=["x"]) == 1
  with pytest.raises(TypeError, match=r"job.b = \['x', 2\]"):
    checked_job(1, b=["x", 2])


def test_gin_binding_of_wrong_type_is_refused_with_its_scope():
  gin_registry.parse_config(["experiments/sft_tiny.gin"], ["MODEL_DIR='/tmp/unused'", "LoopSettings.seed = '0'"])
  with pytest.raises(TypeError, match=r"LoopSettings.seed = '0': expected int"):
    gin.get_configurable("LoopSettings")()
  gin_registry.parse_config(["experiments/sft_tiny.gin"], ["MODEL_DIR='/tmp/unused'", "value/T5Config.d_model = 1.5"])
  with gin.config_scope("value"), pytest.raises(TypeError, match=r"value/T5Config.d_model = 1.5"):
    gin.get_configurable("T5Config")()
  gin.clear_config()


SETTINGS = ("T5Config", "MeshSpec", "LoopSettings", "ConversationSettings", "PairData", "ScorerSpec",
            "ActorCriticHParams", "PPOHParams", "QSettings", "PipelinePlan", "RubricJudge", "make_optimizer")
FILES = sorted(os.path.relpath(p, gin_registry.GIN_DIR)
               for p in glob.glob(os.path.join(gin_registry.GIN_DIR, "**", "*.gin"), recursive=True))


@pytest.mark.parametrize("gin_file", [f for f in FILES if f.startswith("experiments/")])
def test_every_settings_binding_in_the_project_gin_files_passes(gin_file):
  # A false refusal would break a shipped experiment: build every settings object each experiment binds.
  from gin import config as gin_config
  gin_registry.parse_config([gin_file, "meshes/cpu.gin"], ["MODEL_DIR='/tmp/unused'"])
  built = 0
  for scope, selector in list(gin_config._CONFIG):
    name = selector.split(".")[-1]
    if name in SETTINGS:
      with gin.config_scope(scope or None):
        try:
          gin.get_configurable(name)()
        except ValueError:  # a setting left to the command line (e.g. SFT_CHECKPOINT); types were checked first
          pass
      built += 1
  assert built >= 2, gin_file
  gin.clear_config()
