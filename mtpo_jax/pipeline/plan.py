"""The paper's experiments as a stage graph (papers/digest.md A9-A13): one home for which run feeds which.

Education Dialogue (Table 1 and Iterative PPO):
  data -> vocabulary -> education/sft (teacher = mu), education/sft_student (the environment model; with
          environment_student = "learned" it replaces the scripted student in every later stage)
       -> education/judges/{rm,pm}_{conversation,single_turn_reward,single_turn_value}
          (pairs sampled from mu and labelled by the ground-truth judge; rm and pm of one source share the pairs)
       -> education/rl/<method>/seed<k> for every method of Table 1 and Iterative PPO
       -> education/evaluation (the win-rate matrix on held-out test contexts)
Negotiation (Table 3):
  data -> vocabulary -> negotiation/sft (seller = mu) -> negotiation/judges/{rm,pm} (pairs labelled by the
  Bradley-Terry oracle over the sale price) -> negotiation/rl/<method>/seed<k> -> negotiation/evaluation
Then `tables` writes results.md beside the paper's numbers.

Every training stage is `python -m mtpo_jax.main` with the run's recipe (gin/runs/), the model files, the mesh
file and bindings that wire the stages together; `overrides` adds bindings per stage kind (the scale: see
gin/experiments/pipeline_tiny.gin). Keys: "sft", "sft_student", "scorer", "scorer/<judge>", "rl", "rl/<method>",
"iterative_ppo", "negotiation_sft", "negotiation_scorer", "negotiation_rl", "negotiation_rl/<method>",
"evaluate" and "negotiation_evaluate" (extra evaluation CLI arguments).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from typing import Mapping, Sequence

from mtpo_jax.envs.education import scripted_teacher
from mtpo_jax.pipeline import data_stages
from mtpo_jax.pipeline.stages import Stage, main_command


@dataclasses.dataclass(frozen=True)
class Method:
  """A trained method: its label in the tables, the recipe (gin/runs/<recipe>.gin; None: Iterative PPO's
  own), and the learned judge it trains from (a key of JUDGES, or None for an online oracle)."""
  label: str
  recipe: str | None
  judge: str | None


# Table 1 (digest A13) in the paper's column order, then Iterative PPO (digest B).
EDUCATION_METHODS = {
    "sft": Method("SFT", None, None),
    "rlhf_reward": Method("RLHF-r", "rlhf_single_reward", "rm_single_turn_reward"),
    "nash_reward": Method("Nash-r", "nash_single_reward", "pm_single_turn_reward"),
    "rlhf_value": Method("RLHF-v", "rlhf_single_value", "rm_single_turn_value"),
    "nash_value": Method("Nash-v", "nash_single_value", "pm_single_turn_value"),
    "rlhf_multi": Method("RLHF-m", "rlhf_multi", "rm_conversation"),
    "mtpo": Method("MTPO", "mtpo", "pm_conversation"),
    "mtpo_tau": Method("MTPO-tau", "mtpo_tau", "pm_conversation"),
    "iterative_ppo": Method("IterPPO", "iterative_ppo", "rm_conversation"),
}
# Table 3 (digest A11): online oracle (reward RL, MTPO) and from preference data (RLHF, MTPO), beside mu.
NEGOTIATION_METHODS = {
    "sft": Method("SFT", None, None),
    "reward_rl": Method("RL (online reward)", "reward_rl", None),
    "mtpo_online": Method("MTPO (online pref.)", "mtpo", None),
    "rlhf_learned": Method("RLHF (pref. data)", "rlhf_multi", "rm"),
    "mtpo_learned": Method("MTPO (pref. data)", "mtpo", "pm"),
}
# Learned judges: kind (reward model or preference model) and pair source (training/pair_sources.py).
JUDGES = {
    "rm_conversation": ("reward_model", "policy"),
    "pm_conversation": ("preference_model", "policy"),
    "rm_single_turn_reward": ("reward_model", "single_turn_reward"),
    "pm_single_turn_reward": ("preference_model", "single_turn_reward"),
    "rm_single_turn_value": ("reward_model", "single_turn_value"),
    "pm_single_turn_value": ("preference_model", "single_turn_value"),
}
NEGOTIATION_JUDGES = {"rm": ("reward_model", "policy"), "pm": ("preference_model", "policy")}
# Education Dialogue's ground truth (PlanConfig.judge) -> its Gin configurable.
GROUND_TRUTH = {"rubric": "RubricJudge", "population": "PopulationJudge"}


@dataclasses.dataclass(frozen=True)
class PlanConfig:
  """Everything the graph depends on (Gin: PipelinePlan); see gin/experiments/pipeline_tiny.gin for the values of
  the default. train_student: SFT the Education Dialogue student too (digest A9 step 2); environment_student:
  "scripted" (the generator's simulator) or "learned" (that student plays the environment in every later stage).
  overrides: Gin bindings per stage kind or stage (`_check` lists the keys). run_pipeline fills run_dir.
  judge: Education Dialogue's ground truth, which labels the judges' pairs, measures the RL runs' win rates and
  judges the evaluation: "rubric" (oracles/rubric.py) or "population" (the intransitive rater panel of
  oracles/population.py). challengers: scripted teachers or canonical strategies (`canonical:discover`,
  envs/education/scripted_teacher.py) the evaluation plays beside the trained methods."""
  run_dir: str = ""
  model_gin_files: tuple[str, ...] = ("models/t5_tiny.gin",)
  model_bindings: tuple[str, ...] = ("T5Config.vocab_size = 3072",)
  mesh_gin_file: str = "meshes/cpu.gin"
  seeds: tuple[int, ...] = (0, 1)
  education_methods: tuple[str, ...] = tuple(EDUCATION_METHODS)
  negotiation_methods: tuple[str, ...] = tuple(NEGOTIATION_METHODS)
  data_seed: int = 0
  education_train: int = 2000
  education_eval: int = 100
  negotiation_train: int = 1000
  negotiation_eval: int = 100
  vocab_size: int = 3000
  train_student: bool = True
  environment_student: str = "scripted"
  judge: str = "rubric"
  challengers: tuple[str, ...] = ()
  overrides: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
  python: str = sys.executable


def _check(cfg: PlanConfig) -> None:
  for name, known in (("education_methods", EDUCATION_METHODS), ("negotiation_methods", NEGOTIATION_METHODS)):
    unknown = [m for m in getattr(cfg, name) if m not in known]
    if unknown:
      raise ValueError(f"unknown {name} {unknown}; expected some of {list(known)}")
    if getattr(cfg, name) and "sft" not in getattr(cfg, name):
      raise ValueError(f"{name} must include 'sft' (the reference every method is compared with), or be empty "
                       "to skip that environment")
  if not cfg.education_methods and not cfg.negotiation_methods:
    raise ValueError("education_methods and negotiation_methods are both empty: nothing to train")
  if cfg.environment_student not in ("scripted", "learned"):
    raise ValueError(f"environment_student must be 'scripted' or 'learned', got {cfg.environment_student!r}")
  if cfg.environment_student == "learned" and not cfg.train_student:
    raise ValueError("environment_student = 'learned' needs train_student = True (the student SFT stage)")
  if cfg.judge not in GROUND_TRUTH:
    raise ValueError(f"PipelinePlan.judge must be one of {list(GROUND_TRUTH)}, got {cfg.judge!r}")
  for name in cfg.challengers:
    if not scripted_teacher.is_scripted(name):
      raise ValueError(f"challenger {name!r} is not a scripted teacher (scripted:<preference>:<reaction>) or a "
                       "canonical strategy (canonical:<strategy>)")
  if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
    raise ValueError(f"seeds must be distinct and non-empty, got {cfg.seeds}")
  kinds = {"sft", "sft_student", "scorer", "rl", "iterative_ppo", "negotiation_sft", "negotiation_scorer", "negotiation_rl",
           "evaluate", "negotiation_evaluate"}
  known_keys = (kinds | {f"scorer/{j}" for j in JUDGES} | {f"rl/{m}" for m in EDUCATION_METHODS}
                | {f"negotiation_scorer/{j}" for j in NEGOTIATION_JUDGES}
                | {f"negotiation_rl/{m}" for m in NEGOTIATION_METHODS})
  bad = sorted(set(cfg.overrides) - known_keys)
  if bad:
    raise ValueError(f"unknown override keys {bad}; expected some of {sorted(known_keys)}")


class _Builder:
  def __init__(self, cfg: PlanConfig):
    self.cfg = cfg
    self.stages: list[Stage] = []

  def path(self, *parts: str) -> str:
    return os.path.join(self.cfg.run_dir, *parts)

  def over(self, *keys: str) -> list[str]:
    return [b for k in keys for b in self.cfg.overrides.get(k, ())]

  def train(self, name: str, recipe_files: Sequence[str], bindings: Sequence[str], deps: Sequence[str]) -> str:
    cfg = self.cfg
    files = [*cfg.model_gin_files, *recipe_files, cfg.mesh_gin_file]
    wiring = [*cfg.model_bindings, f"MODEL_DIR = '{self.path(name)}'"]
    self.stages.append(Stage(name, tuple(deps), command=main_command(files, [*wiring, *bindings], cfg.python)))
    return name

  @property
  def vocab(self) -> str:
    return self.path("vocabulary", "spm.model")


def _q(path: str) -> str:
  return f"'{path}'"


def build(cfg: PlanConfig) -> list[Stage]:
  """The ordered stage list (dependencies first)."""
  _check(cfg)
  b = _Builder(cfg)
  data_dir = b.path("data")
  b.stages.append(Stage("data", action=functools.partial(
      _data_action, seed=cfg.data_seed, education_train=cfg.education_train, education_eval=cfg.education_eval,
      negotiation_train=cfg.negotiation_train, negotiation_eval=cfg.negotiation_eval),
      params={"seed": cfg.data_seed, "education": [cfg.education_train, cfg.education_eval],
              "negotiation": [cfg.negotiation_train, cfg.negotiation_eval]}))
  b.stages.append(Stage("vocabulary", ("data",), action=functools.partial(
      _vocabulary_action, data_dir=data_dir, vocab_size=cfg.vocab_size), params={"vocab_size": cfg.vocab_size}))
  if cfg.education_methods:
    _education(b, data_dir)
  if cfg.negotiation_methods:
    _negotiation(b, data_dir)
  return b.stages


def _data_action(out_dir: str, **kwargs) -> dict:
  return data_stages.write_data(out_dir, **kwargs)


def _vocabulary_action(out_dir: str, data_dir: str, vocab_size: int) -> dict:
  return data_stages.train_vocabulary(out_dir, data_dir, vocab_size)


def _sft(b: _Builder, name: str, task: str, data_dir: str, sizes: tuple[int, int], override_key: str,
         task_bindings: Sequence[str] = ()) -> str:
  """SFT on the SeqIO task the factory `task` registers over every record the data stage wrote (`sizes`: train,
  eval) in the pipeline's vocabulary, unless the overrides ask for fewer."""
  return b.train(name, ["runs/sft.gin"], [
      f"train_sft.mixture_or_task_name = @{task}()", f"{task}.data_dir = {_q(data_dir)}",
      f"{task}.vocab_path = {_q(b.vocab)}", f"{task}.num_train = {sizes[0]}", f"{task}.num_eval = {sizes[1]}",
      *task_bindings, *b.over(override_key)], ["vocabulary"])


def _scorer(b: _Builder, name: str, kind: str, source: str, sft: str, override_keys: Sequence[str],
            extra: Sequence[str] = (), share_with: str | None = None, student: str | None = None) -> str:
  ckpt = _q(b.path(sft, "checkpoints"))
  deps = [sft] + ([share_with] if share_with else []) + ([student] if student else [])
  if student:
    extra = [*extra, f"ConversationSettings.student_checkpoint = {_q(b.path(student, 'checkpoints'))}"]
  copy_in = tuple((b.path(share_with, f"pairs_{s}.jsonl"), b.path(name, f"pairs_{s}.jsonl"))
                  for s in ("train", "eval")) if share_with else ()
  b.train(name, [f"runs/{kind}.gin"], [
      f"PairData.source = '{source}'", f"PairData.policy_checkpoint = {ckpt}",
      f"train_scorer.init_checkpoint = {ckpt}", f"ConversationSettings.vocab_path = {_q(b.vocab)}", *extra,
      *b.over(*override_keys)], deps)
  if copy_in:
    b.stages[-1] = dataclasses.replace(b.stages[-1], copy_in=copy_in)
  return name


def _rl(b: _Builder, name: str, method: Method, seed: int, sft: str, judge_dir: str | None,
        judge_kind: str | None, override_keys: Sequence[str], extra: Sequence[str] = (),
        student: str | None = None) -> str:
  files, bindings = [f"runs/{method.recipe}.gin"], [f"SFT_CHECKPOINT = {_q(b.path(sft, 'checkpoints'))}"]
  deps = [sft] + ([student] if student else [])
  if student:
    bindings.append(f"ConversationSettings.student_checkpoint = {_q(b.path(student, 'checkpoints'))}")
  bindings += [f"LoopSettings.seed = {seed}", f"ConversationSettings.vocab_path = {_q(b.vocab)}"]
  if method.recipe == "iterative_ppo":
    bindings += ["train_iterative_ppo.reward_fn = @learned_reward_judge()",
                 f"learned_reward_judge.model_dir = {_q(b.path(judge_dir))}"]
    deps.append(judge_dir)
  elif judge_dir is not None:
    files.append(f"judges/learned_{'reward' if judge_kind == 'reward_model' else 'preference'}.gin")
    bindings.append(f"JUDGE_DIR = {_q(b.path(judge_dir))}")
    deps.append(judge_dir)
  return b.train(name, files, [*bindings, *extra, *b.over(*override_keys)], deps)


def _evaluate(b: _Builder, name: str, env: str, runs: Mapping[str, Sequence[str]], deps: Sequence[str],
              override_key: str, student: str | None = None, extra: Sequence[str] = ()) -> None:
  cfg = b.cfg
  argv = [cfg.python, "-m", "mtpo_jax.evaluation.evaluate", "--env", env, "--out", b.path(name), *extra,
          "--vocab", b.vocab, *([f"--student={b.path(student, 'checkpoints')}"] if student else []),
          *[f"--gin={x}" for x in cfg.model_bindings],
          *[f"--gin_file={f}" for f in cfg.model_gin_files],
          *[f"--run={label}={','.join(d if scripted_teacher.is_scripted(d) else b.path(d) for d in dirs)}"
            for label, dirs in runs.items()],
          *b.over(override_key)]
  b.stages.append(Stage(name, tuple(deps) + ((student,) if student else ()), command=tuple(argv)))


def _education(b: _Builder, data_dir: str) -> None:
  cfg = b.cfg
  sizes = (cfg.education_train, cfg.education_eval)
  sft = _sft(b, "education/sft", "education_sft_task", os.path.join(data_dir, "education"), sizes, "sft")
  if cfg.train_student:  # the environment model of digest A9 step 2
    _sft(b, "education/sft_student", "education_sft_task", os.path.join(data_dir, "education"), sizes,
         "sft_student", ["education_sft_task.role = 'student'"])
  student = "education/sft_student" if cfg.environment_student == "learned" else None
  needed = [j for m in cfg.education_methods if (j := EDUCATION_METHODS[m].judge)]
  for judge in [j for j in JUDGES if j in needed]:
    kind, source = JUDGES[judge]
    partner = "rm" + judge[2:] if judge.startswith("pm") else None  # the pm reuses the rm's sampled pairs
    share = f"education/judges/{partner}" if partner in needed else None
    # None: pair_sources.default_judge, the rubric (in its partial mode for single-turn-reward pairs)
    if cfg.judge == "rubric":
      labels = ["PairData.judge = None"]
    elif source == "single_turn_reward":  # partial conversations: the judge's prefix mode, as for the rubric
      labels = [f"PairData.judge = @partial/{GROUND_TRUTH[cfg.judge]}()",
                f"partial/{GROUND_TRUTH[cfg.judge]}.partial = True"]
    else:
      labels = [f"PairData.judge = @{GROUND_TRUTH[cfg.judge]}()"]
    _scorer(b, f"education/judges/{judge}", kind, source, sft, ["scorer", f"scorer/{judge}"],
            extra=labels, share_with=share, student=student)
  runs: dict[str, list[str]] = {}
  for key in cfg.education_methods:
    m = EDUCATION_METHODS[key]
    if key == "sft":
      runs[m.label] = [sft]
      continue
    judge_dir = f"education/judges/{m.judge}"
    runs[m.label] = [
        _rl(b, f"education/rl/{key}/seed{s}", m, s, sft, judge_dir, JUDGES[m.judge][0],
            ["iterative_ppo"] if key == "iterative_ppo" else ["rl", f"rl/{key}"], student=student,
            extra=[] if key == "iterative_ppo" or cfg.judge == "rubric"
            else [f"train_rl.eval_judge = @{GROUND_TRUTH[cfg.judge]}()"])
        for s in cfg.seeds]
  deps = [d for ds in runs.values() for d in ds]
  for name in cfg.challengers:
    runs[name.split(":", 1)[1]] = [name]
  _evaluate(b, "education/evaluation", "education", runs, deps, "evaluate", student,
            [] if cfg.judge == "rubric" else [f"--judge={cfg.judge}"])


def _negotiation(b: _Builder, data_dir: str) -> None:
  cfg = b.cfg
  sft = _sft(b, "negotiation/sft", "negotiation_sft_task", os.path.join(data_dir, "negotiation"),
             (cfg.negotiation_train, cfg.negotiation_eval), "negotiation_sft")
  needed = [j for m in cfg.negotiation_methods if (j := NEGOTIATION_METHODS[m].judge)]
  oracle = ["ConversationSettings.env_name = 'negotiation'", "train_rl.eval_judge = @sale_reward_judge()"]
  for judge in [j for j in NEGOTIATION_JUDGES if j in needed]:
    kind, source = NEGOTIATION_JUDGES[judge]
    share = "negotiation/judges/rm" if judge == "pm" and "rm" in needed else None
    _scorer(b, f"negotiation/judges/{judge}", kind, source, sft,
            ["negotiation_scorer", f"negotiation_scorer/{judge}"],
            extra=["PairData.judge = @sale_reward_judge()", "ConversationSettings.env_name = 'negotiation'"],
            share_with=share)
  runs: dict[str, list[str]] = {}
  for key in cfg.negotiation_methods:
    m = NEGOTIATION_METHODS[key]
    if key == "sft":
      runs[m.label] = [sft]
      continue
    judge_dir = f"negotiation/judges/{m.judge}" if m.judge else None
    extra = oracle + ([] if m.judge else ["train_rl.judge = @sale_reward_judge()"])
    runs[m.label] = [
        _rl(b, f"negotiation/rl/{key}/seed{s}", m, s, sft, judge_dir,
            NEGOTIATION_JUDGES[m.judge][0] if m.judge else None, ["negotiation_rl", f"negotiation_rl/{key}"],
            extra) for s in cfg.seeds]
  _evaluate(b, "negotiation/evaluation", "negotiation", runs, [d for ds in runs.values() for d in ds],
            "negotiation_evaluate")
