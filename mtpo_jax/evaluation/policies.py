"""Trained policies from run directories, played on shared held-out contexts with shared sampling keys.

A run directory is any MODEL_DIR this project writes: SFT (`checkpoints/<step>/state` is a TrainState, so the
policy is `params`), RL (`{"state": ActorCriticState, "reference": mu}`: the policy is `state.policy.params`) or
Iterative PPO (an ActorCriticState: `policy.params`); checkpoints.load_policy reads any of them (the newest step
unless asked otherwise). The T5Config comes from the run's `config.gin` (written by every run of `mtpo_jax.main`),
or from Gin files and bindings.

Every method plays the same contexts with the same per-conversation sampling keys (rollout.conversation_key of
(seed + 1, iteration -1, context id, copy, turn): exactly the keys `rl_trainer` uses for its own evaluation), so
the methods differ only in their parameters (common random numbers).
"""

from __future__ import annotations

import ast
import os
import re
from typing import Any, Mapping, Sequence

import gin
import jax

from mtpo_jax import gin_registry
from mtpo_jax.checkpoints import LoadedPolicy
from mtpo_jax.envs import registry
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import Sampler
from mtpo_jax.models.t5 import T5
from mtpo_jax.training import rollout as ro
from mtpo_jax.types import Context, Conversation

EVAL_ITERATION = -1  # rl_trainer's evaluation keys: (seed + 1, iteration -1)


def _config_text(run_dir: str) -> tuple[str, str]:
  """(path, text) of the run's config.gin (in run_dir, or its parent when given a checkpoints directory)."""
  for d in (run_dir, os.path.dirname(os.path.abspath(run_dir))):
    path = os.path.join(d, "config.gin")
    if os.path.exists(path):
      with open(path) as f:
        return path, f.read()
  raise FileNotFoundError(f"no config.gin in {run_dir!r} (or its parent); pass the model with --gin_file/--gin")


def _bindings(text: str, pattern: str) -> list[str]:
  """The Gin statements of `text` whose first line matches `pattern` (with their indented continuation lines)."""
  out: list[str] = []
  keep = False
  for line in text.splitlines():
    if line[:1].isspace() and keep and out:
      out[-1] += "\n" + line
      continue
    keep = bool(re.match(pattern, line))
    if keep:
      out.append(line)
  return out


def model_config(run_dir: str | None, gin_files: Sequence[str] = (), bindings: Sequence[str] = ()) -> T5Config:
  """The T5Config of a run: its config.gin's (unscoped) T5Config bindings and macros, or, when `gin_files` or
  `bindings` are given, those (e.g. ["models/t5_tiny.gin"], ["T5Config.vocab_size = 3072"]), parsed by
  gin_registry.parse_config. Resets the global Gin config."""
  if not gin_files and not bindings:
    if run_dir is None:
      raise ValueError("model_config needs a run directory or Gin files/bindings")
    _, text = _config_text(run_dir)
    bindings = _bindings(text, r"^([A-Z][A-Z0-9_]*|T5Config\.\w+)\s*=")
    if not any(b.startswith("T5Config.") for b in bindings):
      raise ValueError(f"{run_dir}/config.gin binds no T5Config parameters; pass --gin_file/--gin")
  gin_registry.parse_config(list(gin_files), list(bindings))
  return gin.get_configurable("T5Config")()


def run_settings(run_dir: str, names: Sequence[str]) -> dict[str, Any]:
  """{name: value} for the literal bindings `ConversationSettings.<name> = value` in the run's config.gin (how an
  RL or Iterative PPO run played its conversations); {} for other runs or without a config.gin."""
  try:
    _, text = _config_text(run_dir)
  except FileNotFoundError:
    return {}
  out: dict[str, Any] = {}
  for line in _bindings(text, rf"^ConversationSettings\.({'|'.join(names)})\s*="):
    key, value = line.split("=", 1)
    try:
      out.setdefault(key.strip().split(".", 1)[1], ast.literal_eval(value.strip()))
    except (ValueError, SyntaxError):
      continue
  return out


def play(policies: Mapping[str, LoadedPolicy], settings: ConversationSettings, contexts: Sequence[Context], *,
         seed: int = 0, chunk: int = 64, copies: int = 1) -> dict[str, list[Conversation]]:
  """name -> the K * copies conversations the policy plays as `settings` says against a fresh environment
  (context-major: the copies of context k are entries k * copies ... k * copies + copies - 1; copy 0 is the
  conversation a `copies = 1` call plays), `chunk` contexts per sampler batch, with identical sampling keys for
  every method. Copies have their own sampling keys (rollout.conversation_key), e.g. for best-of-n. A learned
  student (`settings.student_checkpoint`, the first policy's T5Config) is loaded once; its replies are keyed by
  conversation, so every method meets the same student."""
  if copies < 1:
    raise ValueError(f"copies must be >= 1, got {copies}")
  vocab = settings.vocabulary()
  samplers: dict[T5Config, Sampler] = {}  # one compiled sampler per distinct model shape
  out, first = {}, next(iter(policies.values()))
  student = registry.make_student(settings, first.config, vocab, seed)
  for name, policy in policies.items():
    vocab.check_fits(policy.config.vocab_size, name)
    if policy.config not in samplers:
      samplers[policy.config] = Sampler(T5(policy.config), settings.sampling())
    turn_policy = ro.TurnPolicy(samplers[policy.config], jax.device_put(policy.params), vocab, settings.input_length)
    env = registry.make_environment(settings, seed, policy_config=policy.config, vocab=vocab, student=student)
    out[name] = ro.collect_conversations(env, turn_policy, contexts, copies, chunk=chunk, seed=seed + 1,
                                         iteration=EVAL_ITERATION)
  return out
