"""Trained policies from run directories, played on shared held-out contexts with shared sampling keys.

A run directory is any MODEL_DIR this project writes: SFT (`checkpoints/<step>/state` is a TrainState, so the
policy is `params`), RL (`{"state": ActorCriticState, "reference": mu}`: the policy is `state.policy.params`) or
Iterative PPO (an ActorCriticState: `policy.params`). The newest step is used unless asked otherwise. The T5Config
comes from the run's `config.gin` (written by every run of `mtpo_jax.main`), or from Gin files and bindings.

Every method plays the same contexts with the same per-conversation sampling keys (rollout.conversation_key of
(seed + 1, iteration -1, context id, copy, turn): exactly the keys `rl_trainer` uses for its own evaluation), so
the methods differ only in their parameters (common random numbers).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from typing import Any, Mapping, Sequence

import gin
import jax
import numpy as np
import orbax.checkpoint as ocp

from mtpo_jax.data.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import Sampler, SamplingConfig
from mtpo_jax.models.t5 import T5
from mtpo_jax.training import environments
from mtpo_jax.training import rollout as ro
from mtpo_jax.training.checkpoints import CheckpointError, load_params
from mtpo_jax.types import Context, Conversation

# Where each kind of run keeps the policy's parameters inside its checkpoint's `state` item.
LAYOUTS = {"sft": ("params",), "rl": ("state", "policy", "params"), "iterative_ppo": ("policy", "params")}
EVAL_ITERATION = -1  # rl_trainer's evaluation keys: (seed + 1, iteration -1)


@dataclasses.dataclass(frozen=True)
class LoadedPolicy:
  """A policy's params (host arrays) with where they came from: checkpoint directory, step, layout, meta."""
  params: Any
  config: T5Config
  checkpoint_dir: str
  step: int
  layout: str
  meta: dict


def _manager(directory: str) -> ocp.CheckpointManager:
  handlers = {"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
  return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False),
                               item_handlers=handlers)


def checkpoint_steps(run_dir: str) -> list[int]:
  """The saved steps of a run (`find_checkpoint_dir`), ascending."""
  manager = _manager(find_checkpoint_dir(run_dir))
  steps = sorted(manager.all_steps())
  manager.close()
  return steps


def find_checkpoint_dir(run_dir: str) -> str:
  """`run_dir/checkpoints` (or `run_dir` itself, if it is a checkpoints directory) holding at least one step."""
  for d in (os.path.join(run_dir, "checkpoints"), run_dir):
    if os.path.isdir(d) and list(_manager(os.path.abspath(d)).all_steps()):
      return os.path.abspath(d)
  raise CheckpointError(f"no checkpoint found for run {run_dir!r}: expected {os.path.join(run_dir, 'checkpoints')}"
                        "/<step>/ as written by an SFT, RL or Iterative PPO run (or a checkpoints directory)")


def _layout(tree: Any, where: str) -> str:
  """Which LAYOUTS entry the checkpoint's state tree (nested dicts) follows."""
  for name, path in LAYOUTS.items():
    node = tree
    for key in path:
      node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and node:
      return name
  top = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
  raise CheckpointError(f"{where} holds no policy parameters (top-level keys {top}); expected one of "
                        f"{ {k: '/'.join(v) for k, v in LAYOUTS.items()} }")


def load_policy(run_dir: str, config: T5Config, step: int | None = None) -> LoadedPolicy:
  """The policy params of an SFT, RL or Iterative PPO run (newest step unless `step`), as host numpy arrays;
  only the policy's arrays are read (not optimizer states or the RL reference)."""
  directory = find_checkpoint_dir(run_dir)
  manager = _manager(directory)
  steps = sorted(manager.all_steps())
  step = steps[-1] if step is None else step
  if step not in steps:
    raise CheckpointError(f"step {step} not in {directory}; available: {steps}")
  where = f"{directory}/{step}"
  try:
    metadata = manager.item_metadata(step)["state"]
  except Exception as e:  # orbax raises many types
    raise CheckpointError(f"checkpoint {where} is unreadable ({type(e).__name__}: {e})") from e
  tree = getattr(metadata, "tree", metadata)
  layout = _layout(tree, where)
  meta = dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta or {})
  if layout == "sft":
    params = load_params(directory, step)
  else:
    node = tree
    for key in LAYOUTS[layout]:
      node = node[key]
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), dict(node))
    for key in reversed(LAYOUTS[layout]):
      target = {key: target}
    args = ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                  restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target))
    params = manager.restore(step, args=ocp.args.Composite(state=args)).state
    for key in LAYOUTS[layout]:
      params = params[key]
  manager.close()
  return LoadedPolicy(params, config, directory, int(step), layout, meta)


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
  `bindings` are given, those (e.g. ["models/t5_tiny.gin"], ["T5Config.vocab_size = 3072"]), parsed by main's
  Gin machinery. Resets the global Gin config."""
  from mtpo_jax import main  # the parser that resolves gin/ paths and registers every configurable
  if not gin_files and not bindings:
    if run_dir is None:
      raise ValueError("model_config needs a run directory or Gin files/bindings")
    _, text = _config_text(run_dir)
    bindings = _bindings(text, r"^([A-Z][A-Z0-9_]*|T5Config\.\w+)\s*=")
    if not any(b.startswith("T5Config.") for b in bindings):
      raise ValueError(f"{run_dir}/config.gin binds no T5Config parameters; pass --gin_file/--gin")
  main.parse_config(list(gin_files), list(bindings))
  return gin.get_configurable("T5Config")()


def run_settings(run_dir: str, names: Sequence[str]) -> dict[str, Any]:
  """{name: value} for the literal bindings `<job>.<name> = value` of train_rl / train_iterative_ppo in the run's
  config.gin (the conversation settings of an RL run); {} for other runs or without a config.gin."""
  try:
    _, text = _config_text(run_dir)
  except FileNotFoundError:
    return {}
  out: dict[str, Any] = {}
  for job in ("train_rl", "train_iterative_ppo"):
    for line in _bindings(text, rf"^{job}\.({'|'.join(names)})\s*="):
      key, value = line.split("=", 1)
      try:
        out.setdefault(key.strip().split(".", 1)[1], ast.literal_eval(value.strip()))
      except (ValueError, SyntaxError):
        continue
  return out


def play(policies: Mapping[str, LoadedPolicy], env_name: str, contexts: Sequence[Context], *, max_agent_turns: int,
         input_length: int, max_turn_tokens: int, temperature: float = 1.0, seed: int = 0, chunk: int = 64,
         vocab_path: str | None = None, student_checkpoint: str | None = None,
         copies: int = 1) -> dict[str, list[Conversation]]:
  """name -> the K * copies conversations the policy plays against a fresh environment (context-major: the
  copies of context k are entries k * copies ... k * copies + copies - 1; copy 0 is the conversation a
  `copies = 1` call plays), `chunk` contexts per sampler batch, with identical sampling keys for every method.
  Copies have their own sampling keys (rollout.conversation_key), e.g. for best-of-n.
  `student_checkpoint`: a learned Education Dialogue student (the first policy's T5Config) instead of the
  scripted one; its replies are keyed by conversation, so every method meets the same student."""
  if copies < 1:
    raise ValueError(f"copies must be >= 1, got {copies}")
  vocab = Vocabulary(vocab_path or DEFAULT_SPM_PATH)
  sampling = SamplingConfig(max_new_tokens=max_turn_tokens, temperature=temperature)
  samplers: dict[T5Config, Sampler] = {}  # one compiled sampler per distinct model shape
  out, student = {}, None
  for name, policy in policies.items():
    if vocab.vocab_size > policy.config.vocab_size:
      raise ValueError(f"{name}: vocabulary has {vocab.vocab_size} pieces, the policy only "
                       f"{policy.config.vocab_size}")
    if policy.config not in samplers:
      samplers[policy.config] = Sampler(T5(policy.config), sampling)
    turn_policy = ro.TurnPolicy(samplers[policy.config], jax.device_put(policy.params), vocab, input_length)
    if student_checkpoint is not None and student is None:
      student = environments.learned_student(student_checkpoint, policy.config, vocab, input_length=input_length,
                                             max_turn_tokens=max_turn_tokens, seed=seed)
    env = environments.make_environment(env_name, max_agent_turns, seed, student)
    out[name] = ro.collect_conversations(env, turn_policy, contexts, copies, chunk=chunk, seed=seed + 1,
                                         iteration=EVAL_ITERATION)
  return out
