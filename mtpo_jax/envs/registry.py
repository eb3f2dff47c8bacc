"""The environments conversations are played in, by name: "education" (teacher vs student, papers/digest.md A10)
and "negotiation" (seller vs buyer with an explicit sale-price reward, A11), and the one settings object that says
how a conversation is played (`ConversationSettings`). RL, Iterative PPO, pair sampling and evaluation all build
their environment with `make_environment` and draw contexts with `contexts`.
"""

from __future__ import annotations

import dataclasses

from mtpo_jax.envs.base import Environment, Student
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent
from mtpo_jax.envs.negotiation.catalog import sample_contexts
from mtpo_jax.envs.negotiation.env import NegotiationEnv
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import SamplingConfig
from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_jax.types import Context

ENVIRONMENTS = ("education", "negotiation")
# The split streams differ so held-out evaluation contexts never appear in training.
_SPLIT_OFFSET = {"train": 0, "eval": 7_919, "test": 15_485}


def check_env_name(env_name: str) -> None:
  if env_name not in ENVIRONMENTS:
    raise ValueError(f"unknown environment {env_name!r}; expected one of {ENVIRONMENTS}")


@dataclasses.dataclass(frozen=True)
class ConversationSettings:
  """How a conversation is played, one object for RL, Iterative PPO, pair sampling and evaluation.

  env_name: a name of ENVIRONMENTS. max_agent_turns: the horizon H in agent turns. input_length: the policy's
  encoder length (the conversation so far, truncated from the left). max_turn_tokens: the longest agent turn.
  temperature: the policy's sampling temperature. student_checkpoint: a learned Education Dialogue student
  (`learned_student`, the policy's T5Config) instead of the scripted one. vocab_path: the SentencePiece model the
  conversations are tokenized with (None: the project's DEFAULT_SPM_PATH)."""
  env_name: str = "education"
  max_agent_turns: int = 10
  input_length: int = 512
  max_turn_tokens: int = 64
  temperature: float = 1.0
  student_checkpoint: str | None = None
  vocab_path: str | None = None

  def __post_init__(self):
    check_env_name(self.env_name)
    for name in ("max_agent_turns", "input_length", "max_turn_tokens"):
      if getattr(self, name) < 1:
        raise ValueError(f"ConversationSettings.{name} must be >= 1, got {getattr(self, name)}")
    if not self.temperature >= 0.0:
      raise ValueError(f"ConversationSettings.temperature must be >= 0, got {self.temperature}")
    if self.student_checkpoint is not None and self.env_name != "education":
      raise ValueError("a learned student exists for 'education' only; negotiation uses its scripted buyer")

  def vocabulary(self) -> Vocabulary:
    return Vocabulary(self.vocab_path or DEFAULT_SPM_PATH)

  def sampling(self) -> SamplingConfig:
    """The policy's per-turn sampling."""
    return SamplingConfig(max_new_tokens=self.max_turn_tokens, temperature=self.temperature)


def make_environment(settings: ConversationSettings, seed: int = 0, *, policy_config: T5Config | None = None,
                     vocab: Vocabulary | None = None, student: Student | None = None) -> Environment:
  """The environment of `settings`, deterministic given `seed`. Its student: `student` if given, else the learned
  one of `settings.student_checkpoint` (which needs `policy_config` and `vocab`), else the scripted simulator."""
  if student is None:
    student = make_student(settings, policy_config, vocab, seed)
  if settings.env_name == "education":
    return EducationEnv(student if student is not None else ScriptedStudent(seed),
                        max_agent_turns=settings.max_agent_turns)
  if student is not None:
    raise ValueError("a learned student exists for 'education' only; negotiation uses its scripted buyer")
  return NegotiationEnv(max_agent_turns=settings.max_agent_turns, seed=seed)


def make_student(settings: ConversationSettings, policy_config: T5Config | None, vocab: Vocabulary | None,
                 seed: int = 0) -> Student | None:
  """The learned student of `settings.student_checkpoint` (None when the scripted one plays)."""
  if settings.student_checkpoint is None:
    return None
  if policy_config is None or vocab is None:
    raise ValueError("a learned student needs the policy's T5Config and vocabulary")
  return learned_student(settings.student_checkpoint, policy_config, vocab, input_length=settings.input_length,
                         max_turn_tokens=settings.max_turn_tokens, seed=seed)


def learned_student(checkpoint: str, config: T5Config, vocab: Vocabulary, *, input_length: int,
                    max_turn_tokens: int, temperature: float = 1.0, seed: int = 0) -> Student:
  """The paper's environment model (digest A9 step 2): a T5 student SFT'd on student turns
  (`education_student_sft_split`), from its run's checkpoints directory; `config` must match it (the pipeline
  gives teacher and student one T5Config). CheckpointError if missing, ValueError on a shape mismatch."""
  import jax
  from mtpo_jax.checkpoints import load_policy
  from mtpo_jax.envs.learned_student import LearnedStudent
  from mtpo_jax.models.t5 import T5
  params = load_policy(checkpoint, config).params
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
