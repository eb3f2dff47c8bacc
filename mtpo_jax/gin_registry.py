"""Registers the library's functions and classes with Gin: the only place that makes them configurable.

Library code takes plain arguments; this module exposes it to Gin files under short, stable names, and parses Gin
files and bindings (`parse_config`) for the entrypoint and for anything that reads a run's config.gin.
"""

from __future__ import annotations

import os
from typing import Sequence

import gin
import jax.numpy as jnp

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")
_REGISTERED = False


def register() -> None:
  global _REGISTERED
  if _REGISTERED:
    return
  from mtpo_jax import config_types, launch, partitioning
  from mtpo_jax.data import task_contexts
  from mtpo_tasks import text_tasks
  from mtpo_jax.envs.registry import ConversationSettings
  from mtpo_jax.models.config import T5Config
  from mtpo_jax.openai_client import ChatConfig
  from mtpo_jax.oracles import endpoint, learned
  from mtpo_jax.oracles.bradley_terry import sale_reward_judge
  from mtpo_jax.oracles.population import PopulationJudge, Rater
  from mtpo_jax.oracles.rubric import RubricJudge
  from mtpo_jax.pipeline import run as pipeline_run
  from mtpo_jax.pipeline.plan import PlanConfig
  from mtpo_jax.rl.actor_critic import ActorCriticHParams
  from mtpo_jax.rl.ppo import PPOHParams
  from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH
  from mtpo_jax.training import iterative_ppo, optimizers, rl_trainer, scorer_trainer, sft_trainer
  from mtpo_jax.training.loop import LoopSettings
  from mtpo_jax.training.pair_sources import PairData

  names = {
      # the job runner and the jobs
      "run": launch.run_job, "train_sft": sft_trainer.train_sft, "train_scorer": scorer_trainer.train_scorer,
      "train_rl": rl_trainer.train_rl, "train_iterative_ppo": iterative_ppo.train_iterative_ppo,
      "run_pipeline": pipeline_run.run_pipeline,
      # settings objects the jobs share
      "T5Config": T5Config, "MeshSpec": partitioning.MeshSpec, "make_optimizer": optimizers.make_optimizer,
      "LoopSettings": LoopSettings, "ConversationSettings": ConversationSettings, "PairData": PairData,
      "ScorerSpec": scorer_trainer.ScorerSpec, "ActorCriticHParams": ActorCriticHParams, "PPOHParams": PPOHParams,
      "QSettings": iterative_ppo.QSettings, "PipelinePlan": PlanConfig,
      # judges
      "RubricJudge": RubricJudge, "sale_reward_judge": sale_reward_judge,
      "PopulationJudge": PopulationJudge, "Rater": Rater,
      "learned_reward_judge": learned.load_reward_judge, "learned_preference_judge": learned.load_preference_judge,
      "endpoint_judge": endpoint.endpoint_judge, "ChatConfig": ChatConfig,
      # data
      # data: SeqIO task factories (each returns the name of the task it registers)
      "toy_teacher_task": text_tasks.toy_teacher_task, "education_sft_task": text_tasks.education_sft_task,
      "negotiation_sft_task": text_tasks.negotiation_sft_task, "ContextSource": task_contexts.ContextSource,
  }
  for name, fn_or_class in names.items():
    gin.external_configurable(config_types.checked(fn_or_class, name), name)
  gin.constant("DEFAULT_SPM_PATH", DEFAULT_SPM_PATH)
  gin.constant("bfloat16", jnp.bfloat16)
  gin.constant("float32", jnp.float32)
  _REGISTERED = True


def parse_config(gin_files: Sequence[str], bindings: Sequence[str]) -> None:
  """Parses files and bindings; raises on unknown names, missing files or syntax errors."""
  register()
  gin.clear_config()  # unlocks too: a second run in one process (tests, notebooks) starts clean
  # Includes such as 'runs/sft.gin' must resolve under GIN_DIR before gin tries its package-resource reader,
  # which crashes (TypeError) when the working directory holds a same-named folder (e.g. a `runs/` output
  # directory is a namespace package to importlib). gin has no public API to order search paths.
  from gin import config as gin_config
  if GIN_DIR not in gin_config._LOCATION_PREFIXES:
    gin_config._LOCATION_PREFIXES.insert(0, GIN_DIR)
  resolved = []
  for f in gin_files:
    if os.path.exists(f):
      resolved.append(os.path.abspath(f))
    elif os.path.exists(os.path.join(GIN_DIR, f)):
      resolved.append(os.path.join(GIN_DIR, f))
    else:
      raise FileNotFoundError(f"gin file {f!r} not found (looked in the working directory and {GIN_DIR})")
  gin.parse_config_files_and_bindings(resolved, bindings, finalize_config=True)
