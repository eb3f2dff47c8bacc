"""Every experiment parses with every mesh; meshes never name a model and experiments never name a mesh."""

import glob
import os

import gin
import pytest

from mtpo_jax import gin_registry

GIN = gin_registry.GIN_DIR
EXPERIMENTS = sorted(os.path.relpath(p, GIN) for p in glob.glob(os.path.join(GIN, "experiments", "*.gin")))
MESHES = sorted(os.path.relpath(p, GIN) for p in glob.glob(os.path.join(GIN, "meshes", "*.gin")))


def test_there_are_files_to_check():
  assert "experiments/sft_tiny.gin" in EXPERIMENTS
  assert {"meshes/cpu.gin", "meshes/cpu_fake8.gin", "meshes/gpu_1.gin", "meshes/gpu_8.gin",
          "meshes/gpu_multihost.gin", "meshes/tpu_pod.gin"} <= set(MESHES)


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_parses_with_mesh(experiment, mesh):
  gin_registry.parse_config([experiment, mesh], ["MODEL_DIR='/tmp/unused'"])
  job = gin.query_parameter("run.job")
  assert job is not None
  assert gin.query_parameter("MeshSpec.model") >= 1
  gin.clear_config()


def test_layering_rules():
  for mesh in MESHES:
    text = open(os.path.join(GIN, mesh)).read()
    assert "T5Config" not in text and "include" not in text, mesh
  for exp in EXPERIMENTS:
    assert "MeshSpec" not in open(os.path.join(GIN, exp)).read(), exp


def test_model_dir_is_required():
  with pytest.raises(ValueError, match="MODEL_DIR|REQUIRED"):
    gin_registry.parse_config(["experiments/sft_tiny.gin"], [])
    gin.get_configurable("run")()
  gin.clear_config()


def test_includes_resolve_beside_same_named_folders(tmp_path, monkeypatch):
  # A `runs/` output folder in the working directory is a namespace package to importlib; gin's resource
  # reader used to crash on it while resolving "include 'runs/sft.gin'".
  (tmp_path / "runs" / "sft_tiny").mkdir(parents=True)
  (tmp_path / "models").mkdir()
  monkeypatch.chdir(tmp_path)
  monkeypatch.syspath_prepend(str(tmp_path))
  gin_registry.parse_config(["experiments/sft_tiny.gin", "meshes/cpu.gin"], ["MODEL_DIR='/tmp/unused'"])
  assert gin.query_parameter("LoopSettings.num_steps") > 0
  gin.clear_config()


def test_population_judge_overlay_binds_the_panel():
  gin_registry.parse_config(["experiments/mtpo_tiny.gin", "judges/population.gin", "meshes/cpu.gin"],
                            ["MODEL_DIR='/tmp/unused'", "train_rl.judge = @PopulationJudge()",
                             "PopulationJudge.aggregate = 'majority'"])
  for name in ("PairData.judge", "train_rl.eval_judge", "train_rl.judge"):
    assert gin.query_parameter(name).selector == "PopulationJudge", name
  gin.clear_config()
