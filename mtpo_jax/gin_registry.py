"""Registers the library's functions and classes with Gin: the only place that makes them configurable.

Library code takes plain arguments; this module exposes it to Gin files under short, stable names.
"""

from __future__ import annotations

import gin
import jax.numpy as jnp

_REGISTERED = False


def register() -> None:
  global _REGISTERED
  if _REGISTERED:
    return
  from mtpo_jax import partitioning
  from mtpo_jax.data import toy_teacher
  from mtpo_jax.models.config import T5Config
  from mtpo_jax.oracles.rubric import RubricJudge
  from mtpo_jax.rl.actor_critic import ActorCriticHParams
  from mtpo_jax.training import environments, optimizers, rl_trainer, sft_trainer

  gin.external_configurable(T5Config, "T5Config")
  gin.external_configurable(partitioning.MeshSpec, "MeshSpec")
  gin.external_configurable(optimizers.make_optimizer, "make_optimizer")
  gin.external_configurable(sft_trainer.train_sft, "train_sft")
  gin.external_configurable(rl_trainer.train_rl, "train_rl")
  gin.external_configurable(environments.sale_reward_judge, "sale_reward_judge")
  gin.external_configurable(ActorCriticHParams, "ActorCriticHParams")
  gin.external_configurable(RubricJudge, "RubricJudge")
  gin.external_configurable(toy_teacher.generate_split, "toy_teacher_split")
  from mtpo_jax.data import education_examples
  from mtpo_jax.data.vocabulary import DEFAULT_SPM_PATH
  gin.external_configurable(education_examples.teacher_sft_split, "education_teacher_sft_split")
  gin.external_configurable(education_examples.student_sft_split, "education_student_sft_split")
  from mtpo_jax.data import negotiation_examples
  gin.external_configurable(negotiation_examples.seller_sft_split, "negotiation_seller_sft_split")
  gin.constant("DEFAULT_SPM_PATH", DEFAULT_SPM_PATH)
  from mtpo_jax.oracles import learned
  from mtpo_jax.training import pair_sources, scorer_trainer
  gin.external_configurable(pair_sources.PairSampling, "PairSampling")
  gin.external_configurable(scorer_trainer.train_reward_model, "train_reward_model")
  gin.external_configurable(scorer_trainer.train_preference_model, "train_preference_model")
  gin.external_configurable(learned.load_reward_judge, "learned_reward_judge")
  gin.external_configurable(learned.load_preference_judge, "learned_preference_judge")
  from mtpo_jax.rl.ppo import PPOHParams
  from mtpo_jax.training import iterative_ppo
  gin.external_configurable(iterative_ppo.train_iterative_ppo, "train_iterative_ppo")
  from mtpo_jax.pipeline import run as pipeline_run
  gin.external_configurable(pipeline_run.run_pipeline, "run_pipeline")
  gin.external_configurable(PPOHParams, "PPOHParams")
  gin.constant("bfloat16", jnp.bfloat16)
  gin.constant("float32", jnp.float32)
  _REGISTERED = True
