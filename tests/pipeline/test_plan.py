"""The pipeline's stage graph: every training command parses under main's Gin machinery (no misspelt names),
the wiring (which judge and which SFT checkpoint each run uses, pair caches shared between rm and pm) matches
the paper's Table 1 / Table 3 design (papers/digest.md A8-A11), and bad configurations fail by name."""

import gin
import pytest

from mtpo_jax import gin_registry, main
from mtpo_jax.pipeline import plan
from mtpo_jax.pipeline.run import select


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp("pipe"))
  gin_registry.parse_config(["experiments/pipeline_tiny_2seeds.gin"], [f"MODEL_DIR = '{run_dir}'"])
  q = lambda k: gin.query_parameter(f"PipelinePlan.{k}")
  return plan.PlanConfig(run_dir=run_dir, overrides={k: tuple(v) for k, v in q("overrides").items()},
                         seeds=tuple(q("seeds")), model_gin_files=tuple(q("model_gin_files")),
                         model_bindings=tuple(q("model_bindings")))


def test_paper_scale_commands_parse(tmp_path):
  gin_registry.parse_config(["experiments/pipeline_t5_large.gin"], [f"MODEL_DIR = '{tmp_path}'"])
  q = lambda k: gin.query_parameter(f"PipelinePlan.{k}")
  cfg = plan.PlanConfig(run_dir=str(tmp_path), overrides={k: tuple(v) for k, v in q("overrides").items()},
                        seeds=tuple(q("seeds")), model_gin_files=tuple(q("model_gin_files")),
                        model_bindings=tuple(q("model_bindings")), mesh_gin_file="meshes/gpu_1.gin")
  graph = plan.build(cfg)
  assert sum(s.name.startswith("education/rl/mtpo/") for s in graph) == 3
  for stage in graph:
    if stage.command and stage.command[2] == "mtpo_jax.main":
      gin_registry.parse_config(*bindings_of(stage))
      assert gin.query_parameter("T5Config.d_model") == 1024


def bindings_of(stage):
  return main.parse_args(list(stage.command[3:]))


def test_every_training_command_parses(tiny_config):
  graph = plan.build(tiny_config)
  jobs = {}
  for stage in graph:
    if stage.command and stage.command[2] == "mtpo_jax.main":
      files, bindings = bindings_of(stage)
      gin_registry.parse_config(files, bindings)  # raises on any unknown name or bad value
      jobs[stage.name] = gin.query_parameter("run.job").selector
      assert f"MODEL_DIR = '{tiny_config.run_dir}/{stage.name}'" in bindings
  assert jobs["education/sft"] == "train_sft" and jobs["negotiation/sft"] == "train_sft"
  assert jobs["education/rl/iterative_ppo/seed1"] == "train_iterative_ppo"
  assert sum(v == "train_rl" for v in jobs.values()) == 7 * 2 + 4 * 2  # Table 1 RL methods + Table 3, x 2 seeds


def test_wiring_matches_the_paper(tiny_config):
  graph = {s.name: s for s in plan.build(tiny_config)}
  expect_judge = {"rlhf_reward": "rm_single_turn_reward", "nash_reward": "pm_single_turn_reward",
                  "rlhf_value": "rm_single_turn_value", "nash_value": "pm_single_turn_value",
                  "rlhf_multi": "rm_conversation", "mtpo": "pm_conversation", "mtpo_tau": "pm_conversation",
                  "iterative_ppo": "rm_conversation"}
  for method, judge in expect_judge.items():
    stage = graph[f"education/rl/{method}/seed0"]
    assert f"education/judges/{judge}" in stage.deps and "education/sft" in stage.deps
    text = " ".join(stage.command)
    assert f"education/judges/{judge}'" in text and "seed = 0" in text
  # the pm of each source reuses its rm's sampled pairs; single-turn-reward labels come from the partial judge
  pm = graph["education/judges/pm_single_turn_value"]
  assert "education/judges/rm_single_turn_value" in pm.deps
  assert [d.rsplit("/", 1)[1] for _, d in pm.copy_in] == ["pairs_train.jsonl", "pairs_eval.jsonl"]
  assert "PairData.judge = None" in " ".join(graph["education/judges/rm_single_turn_reward"].command)
  # Table 3: online methods use the sale-price oracle, the others the learned negotiation judges
  online = " ".join(graph["negotiation/rl/mtpo_online/seed1"].command)
  assert "train_rl.judge = @sale_reward_judge()" in online and "JUDGE_DIR" not in online
  learned = graph["negotiation/rl/mtpo_learned/seed1"]
  assert "negotiation/judges/pm" in learned.deps and "learned_preference.gin" in " ".join(learned.command)
  evaluation = " ".join(graph["education/evaluation"].command)
  assert "--run=MTPO-tau=" in evaluation and "mtpo_tau/seed0," in evaluation


def test_learned_student_is_wired_into_every_education_stage(tiny_config):
  import dataclasses
  graph = plan.build(dataclasses.replace(tiny_config, environment_student="learned"))
  student = "education/sft_student"
  for stage in graph:
    text = " ".join(stage.command or ())
    if stage.name.startswith(("education/judges", "education/rl", "education/evaluation")):
      assert student in stage.deps, stage.name
      assert f"{tiny_config.run_dir}/{student}/checkpoints" in text, stage.name
    elif stage.name.startswith("negotiation/"):
      assert student not in stage.deps and "student" not in text, stage.name
  assert "education_sft_task.role = 'student'" in " ".join(next(s for s in graph if s.name == student).command)
  scripted = plan.build(tiny_config)  # the default: trained, but the scripted student plays the environment
  assert any(s.name == student for s in scripted)
  assert not any(student in s.deps for s in scripted)
  with pytest.raises(ValueError, match="needs train_student"):
    plan.build(dataclasses.replace(tiny_config, environment_student="learned", train_student=False))


def test_select_keeps_dependencies(tiny_config):
  chosen = [s.name for s in select(plan.build(tiny_config), ["negotiation/rl/reward_rl/seed0"])]
  assert chosen == ["data", "vocabulary", "negotiation/sft", "negotiation/rl/reward_rl/seed0"]
  with pytest.raises(ValueError, match="no stage matches"):
    select(plan.build(tiny_config), ["nope/"])
  # exact names do not match by prefix: education/sft is not education/sft_student
  graph = plan.build(tiny_config)
  assert "education/sft_student" not in [s.name for s in select(graph, ["education/sft"])]
  assert "education/sft_student" in [s.name for s in select(graph, ["education/sft*"])]
  chosen = {s.name for s in select(graph, ["negotiation/"])}
  assert "negotiation/evaluation" in chosen and not any(n.startswith("education/") for n in chosen)


def test_bad_configurations_fail_by_name(tmp_path):
  with pytest.raises(ValueError, match=r"unknown education_methods \['ppo'\]"):
    plan.build(plan.PlanConfig(run_dir=str(tmp_path), education_methods=("sft", "ppo")))
  with pytest.raises(ValueError, match="must include 'sft'"):
    plan.build(plan.PlanConfig(run_dir=str(tmp_path), negotiation_methods=("reward_rl",)))
  with pytest.raises(ValueError, match=r"unknown override keys \['rl/mtpoo'\]"):
    plan.build(plan.PlanConfig(run_dir=str(tmp_path), overrides={"rl/mtpoo": ("x = 1",)}))
  # a subset needs only its judges
  names = [s.name for s in plan.build(plan.PlanConfig(run_dir=str(tmp_path), education_methods=("sft", "mtpo"),
                                                      negotiation_methods=("sft",)))]
  assert "education/judges/pm_conversation" in names and "education/judges/rm_conversation" not in names


def _intransitive_config(run_dir):
  gin_registry.parse_config(["experiments/pipeline_intransitive_tiny.gin"], [f"MODEL_DIR = '{run_dir}'"])
  q = lambda k: gin.query_parameter(f"PipelinePlan.{k}")
  return plan.PlanConfig(run_dir=str(run_dir), overrides={k: tuple(v) for k, v in q("overrides").items()},
                         seeds=tuple(q("seeds")), model_gin_files=tuple(q("model_gin_files")),
                         model_bindings=tuple(q("model_bindings")), judge=q("judge"),
                         challengers=tuple(q("challengers")), education_methods=tuple(q("education_methods")),
                         negotiation_methods=tuple(q("negotiation_methods")), train_student=q("train_student"))


def test_intransitive_experiment_puts_the_panel_everywhere(tmp_path, tiny_config):
  """The panel labels every judge's pairs, measures every RL run's win rate and judges the evaluation, which
  also plays the canonical strategies; no negotiation stage; the default pipeline's commands stay as they were."""
  graph = plan.build(_intransitive_config(tmp_path))
  names = [s.name for s in graph]
  assert not any(n.startswith("negotiation") for n in names)
  assert sorted(n for n in names if "/rl/" in n) == [f"education/rl/{m}/seed0" for m in ("mtpo", "mtpo_tau",
                                                                                        "rlhf_multi")]
  for stage in graph:
    if stage.command and stage.command[2] == "mtpo_jax.main":
      files, bindings = bindings_of(stage)
      gin_registry.parse_config(files, bindings)
      job = gin.query_parameter("run.job").selector
      if job == "train_scorer":
        assert gin.query_parameter("PairData.judge").selector == "PopulationJudge", stage.name
      if job == "train_rl":
        assert gin.query_parameter("train_rl.eval_judge").selector == "PopulationJudge", stage.name
  (evaluation,) = [s for s in graph if s.name == "education/evaluation"]
  assert "--judge=population" in evaluation.command
  assert "--run=discover=canonical:discover" in evaluation.command
  assert "--run=lecture=canonical:lecture" in evaluation.command
  for stage in plan.build(tiny_config):
    assert not any("PopulationJudge" in c or c.startswith("--judge") for c in stage.command or ()), stage.name


def test_bad_judge_or_challenger_is_named(tmp_path):
  with pytest.raises(ValueError, match="PipelinePlan.judge must be one of \\['rubric', 'population'\\], got 'panel'"):
    plan.build(plan.PlanConfig(run_dir=str(tmp_path), judge="panel"))
  with pytest.raises(ValueError, match="challenger 'discover' is not a scripted teacher"):
    plan.build(plan.PlanConfig(run_dir=str(tmp_path), challengers=("discover",)))
  with pytest.raises(ValueError, match="both empty"):
    plan.build(plan.PlanConfig(run_dir=str(tmp_path), education_methods=(), negotiation_methods=()))


def test_population_judge_labels_single_turn_reward_pairs_in_prefix_mode(tmp_path):
  graph = plan.build(plan.PlanConfig(run_dir=str(tmp_path), judge="population", negotiation_methods=()))
  seen = set()
  for stage in graph:
    if stage.name.startswith("education/judges/"):
      files, bindings = bindings_of(stage)
      gin_registry.parse_config(files, bindings)
      judge = gin.query_parameter("PairData.judge")
      assert judge.selector == "PopulationJudge", stage.name
      partial = "single_turn_reward" in stage.name
      assert (judge.scopes == ["partial"]) == partial, stage.name
      if partial:
        assert gin.query_parameter("partial/PopulationJudge.partial") is True
      seen.add(stage.name)
  assert len(seen) == 6
