"""The deep multi-turn loop for MTPO, MTPO-tau's sampling aside, and multi-turn RLHF (papers digest A7).

Each iteration: COLLECT conversations with the current policy (two per context for MTPO, one for RLHF),
SCORE them (a judge's P(first better than second) for MTPO pairs; a judge-as-reward for RLHF), UPDATE the
policy and the turn-level critic with the pure `rl.actor_critic.actor_critic_step`, then log, evaluate the
win rate against the reference policy with the evaluation judge, and checkpoint. Plain arguments; Gin binds
them in gin_registry.py.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import partitioning
from mtpo_jax.data.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import Sampler, SamplingConfig, bucket
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value, value_params_from_policy
from mtpo_jax.oracles.base import Judge
from mtpo_jax.oracles.rubric import RubricJudge
from mtpo_jax.rl import actor_critic as ac
from mtpo_jax.rl import rewards as rw
from mtpo_jax.training import rollout_engine as rollouts
from mtpo_jax.training.checkpoints import Checkpointer, load_params
from mtpo_jax.training.metrics import MetricsWriter, progress
from mtpo_jax.training.state import TrainState

log = logging.getLogger(__name__)


def education_contexts(num: int, seed: int, split: str) -> list:
  return [record_to_conversation(r, f"{split}-{seed}-{i}").context for i, r in enumerate(generator.generate(num, seed, split))]


def win_rate(judge: Judge, a: Sequence, b: Sequence) -> tuple[float, float]:
  """Mean P(a_i better than b_i) and the half-width of its 95% normal interval."""
  p = judge.preference(list(a), list(b))
  return float(p.mean()), float(1.96 * p.std(ddof=1) / np.sqrt(len(p))) if len(p) > 1 else float("nan")


def _init_states(policy: T5, value: T5Value, policy_params, tx_p, tx_v, seed: int, input_length: int,
                 partitioner: partitioning.Partitioner):
  x = jnp.ones((1, input_length), jnp.int32)
  p_specs = partitioning.logical_param_specs(jax.eval_shape(policy.init, jax.random.PRNGKey(0), x, x)["params"])
  v_specs = partitioning.logical_param_specs(jax.eval_shape(value.init, jax.random.PRNGKey(0), x)["params"])

  def init(rng):
    r_p, r_v, r_s = jax.random.split(rng, 3)
    pp = policy_params if policy_params is not None else nn.unbox(policy.init(r_p, x, x)["params"])
    vp = value_params_from_policy(nn.unbox(value.init(r_v, x)["params"]), pp)
    return ac.ActorCriticState(TrainState.create(pp, tx_p, r_s), TrainState.create(vp, tx_v, r_s))

  with partitioner.context():
    abstract = jax.eval_shape(init, jax.random.PRNGKey(seed))
    shardings = ac.ActorCriticState(partitioner.state_shardings(abstract.policy, p_specs),
                                    partitioner.state_shardings(abstract.value, v_specs))
    state = jax.jit(init, out_shardings=shardings)(jax.random.PRNGKey(seed))
  return state, shardings, abstract


def train_mtpo(model_dir: str, policy_config: T5Config, *, algorithm: str = "mtpo",
               hparams: ac.ActorCriticHParams = ac.ActorCriticHParams(),
               policy_optimizer: tuple[optax.GradientTransformation, Any],
               value_optimizer: tuple[optax.GradientTransformation, Any],
               init_checkpoint: str | None = None, judge: Judge | None = None, eval_judge: Judge | None = None,
               mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(), num_iterations: int = 100,
               contexts_per_batch: int = 16, max_agent_turns: int = 10, input_length: int = 512,
               max_turn_tokens: int = 64, temperature: float = 1.0, eval_every: int = 50, eval_contexts: int = 64,
               log_every: int = 1, save_every: int = 50, keep_checkpoints: int = 3, seed: int = 0) -> dict[str, float]:
  """algorithm: "mtpo" (2 conversations per context, judged against each other) or "rlhf_multi" (1 per
  context; `judge` must offer `rewards(conversations)`, e.g. a learned reward model)."""
  if algorithm not in ("mtpo", "rlhf_multi"):
    raise ValueError(f"unknown algorithm {algorithm!r}; expected mtpo or rlhf_multi")
  copies = 2 if algorithm == "mtpo" else 1
  judge, eval_judge = judge or RubricJudge(), eval_judge or RubricJudge()
  vocab = Vocabulary(DEFAULT_SPM_PATH)
  if vocab.vocab_size > policy_config.vocab_size:
    raise ValueError(f"vocabulary has {vocab.vocab_size} pieces, the policy only {policy_config.vocab_size}")
  partitioner = partitioning.Partitioner(partitioning.make_mesh(mesh_spec), mesh_spec.rules)
  policy, value = T5(policy_config), T5Value(policy_config)
  tx_p, tx_v = policy_optimizer[0], value_optimizer[0]
  init_params = load_params(init_checkpoint) if init_checkpoint else None
  state, shardings, abstract = _init_states(policy, value, init_params, tx_p, tx_v, seed, input_length, partitioner)
  frozen = {"reference": jax.tree.map(jnp.copy, state.policy.params)}  # mu = the starting (SFT) policy
  ckpt = Checkpointer(os.path.join(model_dir, "checkpoints"), save_every, keep_checkpoints)
  start = 0
  if ckpt.latest_step() is not None:
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    restored, meta = ckpt.restore({"state": target, "reference": target.policy.params})
    state, frozen["reference"], start = restored["state"], restored["reference"], int(meta["iteration"])

  env = EducationEnv(ScriptedStudent(seed), max_agent_turns=max_agent_turns)
  sampler = Sampler(policy, SamplingConfig(max_new_tokens=max_turn_tokens, temperature=temperature))
  eval_ctx = education_contexts(eval_contexts, seed, "eval")
  num_rows = bucket(contexts_per_batch * copies * max_agent_turns, 16)
  num_conversations = contexts_per_batch * copies
  batch_shapes = {"encoder_ids": (num_rows, input_length), "decoder_ids": (num_rows, max_turn_tokens),
                  "token_mask": (num_rows, max_turn_tokens), "row_mask": (num_rows,),
                  "turn_rows": (num_conversations, max_agent_turns), "turn_mask": (num_conversations, max_agent_turns),
                  "rewards": (num_conversations, max_agent_turns)}
  batch_sh = {k: partitioner.data_sharding(len(v)) for k, v in batch_shapes.items()}
  step = partitioner.jit(functools.partial(ac.actor_critic_step, hp=hparams, policy=policy, value=value,
                                           policy_tx=tx_p, value_tx=tx_v),
                         in_shardings=(shardings, batch_sh, {"reference": shardings.policy.params}),
                         out_shardings=(shardings, partitioner.replicated), donate_argnums=0)
  writer = MetricsWriter(model_dir)
  bar = progress(num_iterations, initial=start, desc=algorithm)
  last: dict[str, float] = {}
  try:
    for it in range(start, num_iterations):
      t0 = time.time()
      # COLLECT
      contexts = education_contexts(contexts_per_batch, seed + 1000 * it, "train")
      batch = rollouts.collect(env, sampler, state.policy.params, vocab, contexts, copies=copies,
                               input_length=input_length, seed=seed, iteration=it)
      t1 = time.time()
      # SCORE
      if copies == 2:
        a = [batch.conversations[i] for i in batch.pairs[:, 0]]
        b = [batch.conversations[i] for i in batch.pairs[:, 1]]
        prefs = judge.preference(a, b)
        scores = rw.pair_scores(prefs, batch.pairs, len(batch.conversations))
        spread = rw.preference_spread(prefs)
      else:
        scores, spread = np.asarray(judge.rewards(batch.conversations), np.float32), {}
      rewards = rw.terminal_rewards(scores, batch.turn_mask)
      t2 = time.time()
      # UPDATE
      device_batch = rollouts.pad_rows(batch, rewards, num_rows, max_agent_turns)
      state, metrics = step(state, partitioner.put_batch(device_batch), frozen)
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      t3 = time.time()
      if not all(np.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite metrics at iteration {it + 1}: {metrics}; nothing was saved; last "
                                 f"good checkpoint: {ckpt.latest_step()} in {ckpt.directory}")
      sampled = float(batch.token_mask.sum())
      metrics.update(spread, conversation_turns=float(np.mean([len(c.turns) for c in batch.conversations])),
                     end_marker_rate=float(np.mean([c.turns[-1].text.lower().endswith("[end of conversation]")
                                                    for c in batch.conversations])),
                     collect_s=t1 - t0, judge_s=t2 - t1, update_s=t3 - t2, decode_tokens_per_s=sampled / (t1 - t0))
      done = it + 1
      if done % eval_every == 0 or done == num_iterations:
        ours = rollouts.collect(env, sampler, state.policy.params, vocab, eval_ctx, input_length=input_length,
                                seed=seed + 1, iteration=-1).conversations
        ref = rollouts.collect(env, sampler, frozen["reference"], vocab, eval_ctx, input_length=input_length,
                               seed=seed + 1, iteration=-1).conversations
        metrics["win_rate_vs_reference"], metrics["win_rate_ci95"] = win_rate(eval_judge, ours, ref)
      last = writer.write(done, metrics)
      bar.set_postfix(v_loss=f"{metrics['value_loss']:.3f}", kl=f"{metrics['kl_to_reference']:.3f}")
      bar.update(1)
      ckpt.save(done, {"state": state, "reference": frozen["reference"]}, {"iteration": done},
                force=done == num_iterations)
  finally:
    bar.close()
    ckpt.close()
    writer.close()
  return last
