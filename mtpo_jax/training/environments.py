"""The environments an RL loop can train in, by name: "education" (teacher vs student, papers/digest.md A10) and
"negotiation" (seller vs buyer with an explicit sale-price reward, A11). One home for how each builds its
environment, draws contexts for a split and stream position, and defines its explicit reward if it has one.
"""

from __future__ import annotations

import dataclasses

from mtpo_jax.data.vocabulary import Vocabulary
from mtpo_jax.envs.base import Environment, Student
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent
from mtpo_jax.envs.negotiation.catalog import sample_contexts
from mtpo_jax.envs.negotiation.env import NegotiationEnv
from mtpo_jax.envs.negotiation.reward import sale_price
from mtpo_jax.oracles.bradley_terry import BradleyTerryRewardJudge
from mtpo_jax.models.config import T5Config
from mtpo_jax.types import Context

ENVIRONMENTS = ("education", "negotiation")
# The split streams differ so held-out evaluation contexts never appear in training.
_SPLIT_OFFSET = {"train": 0, "eval": 7_919, "test": 15_485}


def check_env_name(env_name: str) -> None:
  if env_name not in ENVIRONMENTS:
    raise ValueError(f"unknown environment {env_name!r}; expected one of {ENVIRONMENTS}")


def make_environment(env_name: str, max_agent_turns: int, seed: int = 0, student: Student | None = None
                     ) -> Environment:
  """The environment with `student` as its simulator, or the default scripted one (deterministic given `seed`).
  A learned student (`learned_student`) plays the Education Dialogue student only."""
  check_env_name(env_name)
  if env_name == "education":
    return EducationEnv(student if student is not None else ScriptedStudent(seed), max_agent_turns=max_agent_turns)
  if student is not None:
    raise ValueError("a learned student exists for 'education' only; negotiation uses its scripted buyer")
  return NegotiationEnv(max_agent_turns=max_agent_turns, seed=seed)


def learned_student(checkpoint: str, config: T5Config, vocab: Vocabulary, *, input_length: int,
                    max_turn_tokens: int, temperature: float = 1.0, seed: int = 0) -> Student:
  """The paper's environment model (digest A9 step 2): a T5 student SFT'd on student turns
  (`education_student_sft_split`), from its run's checkpoints directory; `config` must match it (the pipeline
  gives teacher and student one T5Config). CheckpointError if missing, ValueError on a shape mismatch."""
  import jax
  from mtpo_jax.envs.learned_student import LearnedStudent
  from mtpo_jax.models.decoding import SamplingConfig
  from mtpo_jax.models.t5 import T5
  from mtpo_jax.training.checkpoints import load_t5_params
  params = load_t5_params(checkpoint, config, "student checkpoint")
  return LearnedStudent(T5(config), jax.device_put(params), vocab,
                        SamplingConfig(max_new_tokens=max_turn_tokens, temperature=temperature),
                        input_length=input_length, seed=seed)


def contexts(env_name: str, num: int, seed: int, split: str) -> list[Context]:
  """`num` contexts of `split` ("train" | "eval" | "test"); (seed, split) name a reproducible stream and
  different splits never share a context."""
  check_env_name(env_name)
  if split not in _SPLIT_OFFSET:
    raise ValueError(f"unknown split {split!r}; expected one of {sorted(_SPLIT_OFFSET)}")
  if num < 1:
    raise ValueError(f"need at least one context, got {num}")
  if env_name == "education":
    return [record_to_conversation(r, f"{split}-{seed}-{i}").context
            for i, r in enumerate(generator.generate(num, seed, split))]
  drawn = sample_contexts(num, seed=seed * 100_003 + _SPLIT_OFFSET[split])
  return [dataclasses.replace(c, context_id=f"{split}-{seed}-{i}") for i, c in enumerate(drawn)]


def sale_reward_judge(scale: float = 1000.0) -> BradleyTerryRewardJudge:
  """The negotiation oracle as a judge (digest A11): `rewards` = sale price / `scale` (0 without a sale) and
  `preference` = sigmoid(r(a) - r(b)) over those. The paper does not scale the price [NOT FOUND]; $1,000 keeps
  rewards near 10-30, a sane range for the critic's regression and for the Bradley-Terry logit."""
  if not scale > 0:
    raise ValueError(f"scale must be positive, got {scale}")
  return BradleyTerryRewardJudge(lambda c: sale_price(c) / scale)
