"""The shared loop of every conversation-feedback RL algorithm of the MTPO paper (papers/digest.md A7, A8, A11).

Each iteration: COLLECT conversations (or, for the single-turn baselines, one agent turn from logged states),
SCORE them with the training judge, UPDATE the policy and the turn-level critic with the one pure step
`rl.actor_critic.actor_critic_step`, then log, evaluate against the reference policy mu on held-out contexts,
and checkpoint the full state (both networks, both optimizer states, the RNG, mu, the iteration; the iteration
fixes the data position because every context and sampling key is derived from (seed, iteration)).

The algorithms (ALGORITHMS) differ only in what is sampled and how it is scored:
  mtpo                 2 conversations per context from pi_theta; rewards p and 1 - p of the judged pair (A7)
  mtpo_tau             the same pairs sampled from the geometric mixture (1 - tau) theta + tau mu (A4)
  rlhf_multi           1 conversation per context; reward = the judge's `rewards` (a learned BT model) (A5, A7)
  reward_rl            1 conversation per context; reward = the environment's explicit reward (A11; Car Dealer)
  rlhf_single_reward,  single-turn RLHF: states logged from mu's conversations, one new agent turn each,
  rlhf_single_value    rewarded by a turn-level reward model (trained on single_turn_reward / _value pairs)
  nash_single_reward,  single-turn Nash-MD: two new agent turns per logged state (from the mixture when tau > 0),
  nash_single_value    p and 1 - p from a turn-level preference model (A8)
The single-turn variants are the same actor-critic with one-turn episodes (then GAE reduces to r - V(x)).
Plain arguments; Gin binds them in gin_registry.py.

Under several JAX processes (docs/distributed.md) each process plays and judges its block of the contexts on its
own devices, and the update batch is gathered into the same array for any process count (`update_batch`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import distributed, partitioning
from mtpo_jax.checkpoints import load_params
from mtpo_jax.data import task_contexts
from mtpo_jax.envs import registry
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import Sampler, bucket
from mtpo_jax.models.mixture import MixtureParams, MixtureSampler
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.oracles.base import Judge
from mtpo_jax.rl import actor_critic as ac
from mtpo_jax.rl import rewards as rw
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.training import rollout as ro
from mtpo_jax.training.loop import LoopSettings, TrainLoop
from mtpo_jax.training.state import init_actor_critic_state
from mtpo_jax.types import Conversation

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AlgorithmSpec:
  """copies: samples per context or state; feedback: "preference" (judged pairs) or "reward" (a scalar per
  conversation); single_turn: one new agent turn from logged states; tau: "none" (must be 0), "required" (> 0)
  or "optional"."""
  copies: int
  feedback: str
  single_turn: bool = False
  tau: str = "none"


ALGORITHMS = {
    "mtpo": AlgorithmSpec(2, "preference"),
    "mtpo_tau": AlgorithmSpec(2, "preference", tau="required"),
    "rlhf_multi": AlgorithmSpec(1, "reward"),
    "reward_rl": AlgorithmSpec(1, "reward"),
    "rlhf_single_reward": AlgorithmSpec(1, "reward", single_turn=True),
    "rlhf_single_value": AlgorithmSpec(1, "reward", single_turn=True),
    "nash_single_reward": AlgorithmSpec(2, "preference", single_turn=True, tau="optional"),
    "nash_single_value": AlgorithmSpec(2, "preference", single_turn=True, tau="optional"),
}


def algorithm_spec(algorithm: str, tau: float) -> AlgorithmSpec:
  if algorithm not in ALGORITHMS:
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {sorted(ALGORITHMS)}")
  spec = ALGORITHMS[algorithm]
  if not 0.0 <= tau < 1.0:
    raise ValueError(f"tau must be in [0, 1), got {tau}")
  if spec.tau == "none" and tau != 0.0:
    raise ValueError(f"{algorithm} samples from the policy itself; tau must be 0 (got {tau}); use mtpo_tau")
  if spec.tau == "required" and tau == 0.0:
    raise ValueError(f"{algorithm} samples from the mixture; set tau > 0 (Table 4: 0.0375)")
  return spec


def judge_rewards(judge: Any, conversations: Sequence[Conversation]) -> np.ndarray:
  """[C] float32 scalar rewards from a judge offering `rewards` (learned reward models, explicit rewards) or
  `score` (the ground-truth RubricJudge)."""
  for name in ("rewards", "score"):
    if hasattr(judge, name):
      return np.asarray(getattr(judge, name)(list(conversations)), np.float32)
  raise TypeError(f"{type(judge).__name__} gives no scalar reward (needs rewards() or score()); reward-based "
                  "algorithms need e.g. learned_reward_judge")


def win_rate(judge: Judge, a: Sequence[Conversation], b: Sequence[Conversation]) -> tuple[float, float]:
  """Mean P(a_i better than b_i) and the half-width of its 95% normal interval, over the conversations of
  every process (each judges its own block; the preferences are gathered in process order)."""
  p = distributed.gather_rows(np.asarray(judge.preference(list(a), list(b)), np.float64))
  return float(p.mean()), float(1.96 * p.std(ddof=1) / np.sqrt(len(p))) if len(p) > 1 else float("nan")


class _Rollouts:
  """What each algorithm samples: whole conversations, or one turn from states logged by mu."""

  def __init__(self, spec: AlgorithmSpec, env, sampler: Sampler, mixture: MixtureSampler | None, vocab: Vocabulary,
               input_length: int, tau: float, seed: int):
    self.spec, self.env, self.sampler, self.mixture, self.tau, self.seed = spec, env, sampler, mixture, tau, seed
    self.vocab, self.input_length = vocab, input_length

  def policy(self, params: Any, reference: Any, explore: bool) -> ro.TurnPolicy:
    """pi_theta, or (for training rollouts with tau > 0) the mixture of pi_theta and mu."""
    if explore and self.mixture is not None:
      return ro.TurnPolicy(self.mixture, MixtureParams(params, reference, self.tau), self.vocab, self.input_length)
    return ro.TurnPolicy(self.sampler, params, self.vocab, self.input_length)

  def collect(self, params: Any, reference: Any, contexts, iteration: int) -> ro.RolloutBatch:
    policy = self.policy(params, reference, explore=True)
    if not self.spec.single_turn:
      return ro.collect(self.env, policy, contexts, copies=self.spec.copies, seed=self.seed, iteration=iteration)
    logged = ro.collect(self.env, self.policy(reference, reference, explore=False), contexts, seed=self.seed + 1,
                        iteration=iteration)
    starts = ro.logged_states(logged.conversations, (self.seed, iteration))
    batch = ro.collect(self.env, policy, starts=starts, copies=self.spec.copies, seed=self.seed,
                       iteration=iteration, max_new_agent_turns=1)
    for k in ("decode_s", "env_s"):
      batch.timings[k] += logged.timings[k]
    return batch

  def finish_with_reference(self, batch: ro.RolloutBatch, reference: Any, iteration: int) -> list[Conversation]:
    """Each conversation continued to its end by mu (the Monte-Carlo single-turn value of digest A8)."""
    out = list(batch.conversations)
    mu = self.policy(reference, reference, explore=False)
    for k in range(self.spec.copies):  # the copies of one state share a start name: one collect per copy
      live = [i for i, c in enumerate(out) if batch.copy[i] == k and not c.done]
      if live:
        done = ro.collect(self.env, mu, starts=[out[i] for i in live], seed=self.seed + 2 + k,
                          iteration=iteration).conversations
        for i, c in zip(live, done):
          out[i] = c
    return out


def _score(spec: AlgorithmSpec, judge: Any, batch: ro.RolloutBatch,
           judged: Sequence[Conversation]) -> tuple[np.ndarray, dict[str, float]]:
  """Per-conversation scores [C] of `judged` (the batch's conversations, or their continuations) and judge
  diagnostics over every process's batch."""
  if spec.feedback == "preference":
    pairs = batch.pair_indices()
    prefs = judge.preference([judged[i] for i in pairs[:, 0]], [judged[j] for j in pairs[:, 1]])
    return rw.pair_scores(prefs, pairs, len(judged)), rw.preference_spread(distributed.gather_rows(prefs))
  scores = judge_rewards(judge, judged)
  every = distributed.gather_rows(scores)
  return scores, {"reward_mean": float(every.mean()), "reward_std": float(every.std())}


def encoder_length_bucket(encoder_ids: np.ndarray, buckets: int) -> int:
  """The static encoder length the update runs at: the smallest of `buckets` equal steps of the padded input
  length (input_length / buckets, 2 * input_length / buckets, ..., input_length) that holds every real token of
  `encoder_ids` [N, S] (right-padded with 0). buckets <= 1 keeps S. The rows are right-padded and the encoder and
  cross-attention mask padding, so dropping trailing pad columns changes no real token's computation; the step
  compiles once per bucket (at most `buckets` programs)."""
  s = encoder_ids.shape[1]
  if buckets <= 1 or encoder_ids.size == 0:
    return s
  real = (encoder_ids != 0).any(axis=0)
  used = int(np.flatnonzero(real)[-1]) + 1 if real.any() else 1
  step = -(-s // buckets)
  return min(s, -(-used // step) * step)


def update_batch(batch: ro.RolloutBatch, rewards: np.ndarray, num_rows: int,
                 microbatch_rows: int, length_buckets: int = 1) -> dict[str, np.ndarray]:
  """The actor-critic batch (rl.actor_critic.actor_critic_step's layout) over every process's conversations,
  identical on every process whatever the process count.

  Rows are gathered from all processes and ordered by (global conversation, turn); conversations are in process
  order, which is the global context order. Real rows go to the leading strided microbatches
  (`microbatch_order`, so the step skips all-padding ones). The gathered rows are a few MB (ids and masks), far
  less than the per-iteration parameter gather of the rollouts, and a process-independent layout makes the
  update the same computation for 1 process x 8 devices and 2 x 4. `length_buckets` > 1 trims the encoder
  ids to `encoder_length_bucket` (the rollouts pad every state to input_length, but most states are far shorter:
  8, 61 and 109 tokens on average at turns 1-3 of the tiny main job, against 192).
  """
  perm = np.lexsort((batch.turn, batch.conversation))
  position = np.empty_like(perm)
  position[perm] = np.arange(len(perm))
  offset = distributed.process_offset(len(perm))
  local_turn_rows = np.where(batch.turn_rows >= 0, offset + position[np.maximum(batch.turn_rows, 0)], -1)
  rows = {k: distributed.gather_rows(getattr(batch, k)[perm]) for k in ("encoder_ids", "decoder_ids", "token_mask")}
  rows["behaviour_logp"] = distributed.gather_rows(
      (batch.logp_behaviour * batch.token_mask).sum(axis=1).astype(np.float32)[perm])
  n = len(rows["token_mask"])
  if n > num_rows:
    raise ValueError(f"the rollouts hold {n} rows; the update batch holds {num_rows}")
  order = ac.microbatch_order(num_rows, microbatch_rows)
  out = {}
  for k, v in rows.items():
    out[k] = np.zeros((num_rows,) + v.shape[1:], v.dtype)
    out[k][order[:n]] = v
  out["row_mask"] = np.zeros(num_rows, np.float32)
  out["row_mask"][order[:n]] = 1.0
  turn_rows = distributed.gather_rows(local_turn_rows.astype(np.int32))
  out["encoder_ids"] = out["encoder_ids"][:, :encoder_length_bucket(out["encoder_ids"], length_buckets)]
  out.update(turn_rows=np.where(turn_rows >= 0, order[np.maximum(turn_rows, 0)], -1).astype(np.int32),
             turn_mask=distributed.gather_rows(batch.turn_mask), rewards=distributed.gather_rows(rewards))
  return out


def train_rl(model_dir: str, policy_config: T5Config, *, algorithm: str = "mtpo",
             hparams: ac.ActorCriticHParams = ac.ActorCriticHParams(),
             policy_optimizer: tuple[optax.GradientTransformation, Any],
             value_optimizer: tuple[optax.GradientTransformation, Any], judge: Any, eval_judge: Judge,
             init_checkpoint: str | None = None, mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(),
             conversation: ConversationSettings = ConversationSettings(),
             loop: LoopSettings = LoopSettings(num_steps=100, batch_size=16, eval_every=50, save_every=50),
             eval_contexts: int = 64, value_rollouts: bool = False,
             contexts: task_contexts.ContextSource = task_contexts.ContextSource()) -> dict[str, float]:
  """Trains `algorithm` (see ALGORITHMS; its tau is hparams.tau) from `init_checkpoint` (the SFT policy, which is
  also mu) for loop.num_steps iterations of loop.batch_size contexts, playing as `conversation` says; `judge`
  gives the training feedback, `eval_judge` the win rate against mu on `eval_contexts` held-out contexts every
  loop.eval_every iterations.

  value_rollouts (single-turn algorithms with an online conversation-level judge): finish each sampled turn's
  conversation with mu and judge the final conversation, the Monte-Carlo value behind the paper's
  single-turn-value data; off when the judge is a learned turn-level model (it scores the partial conversation).

  `contexts`: where the training contexts come from (data/task_contexts.ContextSource: the environment's
  generated stream by default, or an `*_rl_contexts` SeqIO task or a file written from one). Held-out
  evaluation always plays the environment's "eval" stream.
  """
  tau, seed, contexts_per_batch = hparams.tau, loop.seed, loop.batch_size
  spec = algorithm_spec(algorithm, tau)
  if value_rollouts and not spec.single_turn:
    raise ValueError(f"value_rollouts is for the single-turn algorithms; {algorithm} already judges whole "
                     "conversations")
  if eval_contexts < 1:
    raise ValueError(f"eval_contexts must be >= 1, got {eval_contexts}")
  distributed.process_slice(contexts_per_batch, "contexts_per_batch", divisible=True)  # fail before any work
  vocab = conversation.vocabulary()
  with TrainLoop(model_dir, mesh_spec, save_every=loop.save_every, keep_checkpoints=loop.keep_checkpoints,
                 vocab=vocab, model_config=policy_config,
                 fall_back=loop.restore_earlier_if_corrupt) as run:
    partitioner = run.partitioner
    policy, value = T5(policy_config), T5Value(policy_config)
    tx_p, tx_v = policy_optimizer[0], value_optimizer[0]
    init_params = load_params(init_checkpoint) if init_checkpoint else None
    state, shardings, abstract = init_actor_critic_state(policy, value, init_params, tx_p, tx_v, seed,
                                                         conversation.input_length, partitioner)
    frozen = {"reference": jax.tree.map(jnp.copy, state.policy.params)}  # mu = the starting (SFT) policy
    fingerprint = {"algorithm": algorithm, "env_name": conversation.env_name, "tau": tau,
                   "input_length": conversation.input_length, "contexts_per_batch": contexts_per_batch, "seed": seed}
    if contexts.name:
      fingerprint["contexts"] = contexts.name
    restored = run.restore({"state": abstract, "reference": abstract.policy.params},
                           {"state": shardings, "reference": shardings.policy.params}, fingerprint)
    start = 0
    if restored is not None:
      saved, start = restored[0], int(restored[1]["iteration"])
      state, frozen["reference"] = saved["state"], saved["reference"]

    train_contexts = contexts.load(model_dir)

    # ROLLOUT MACHINERY AND THE JITTED STEP
    env = registry.make_environment(conversation, seed, policy_config=policy_config, vocab=vocab)
    sampling = conversation.sampling()
    sampler = Sampler(policy, sampling)
    mixture = MixtureSampler(policy, policy, sampling) if tau > 0 else None
    rollouts = _Rollouts(spec, env, sampler, mixture, vocab, conversation.input_length, tau, seed)
    turns = 1 if spec.single_turn else conversation.max_agent_turns
    num_conversations = contexts_per_batch * spec.copies
    num_rows = bucket(num_conversations * turns, max(16, partitioner.mesh.size))
    ac.microbatch_order(num_rows, hparams.microbatch_rows)  # ValueError if it does not divide num_rows
    row_keys = ("encoder_ids", "decoder_ids", "token_mask", "row_mask", "behaviour_logp")
    batch_sh = {k: partitioner.data_sharding(1 if k in ("row_mask", "behaviour_logp") else 2) for k in row_keys}
    # [C, T] bookkeeping is tiny and C need not divide the data axis: replicate it.
    batch_sh.update({k: partitioner.replicated for k in ("turn_rows", "turn_mask", "rewards")})
    step = partitioner.jit(functools.partial(ac.actor_critic_step, hp=hparams, policy=policy, value=value,
                                             policy_tx=tx_p, value_tx=tx_v),
                           in_shardings=(shardings, batch_sh, {"reference": shardings.policy.params}),
                           out_shardings=(shardings, partitioner.replicated), donate_argnums=0)
    eval_ctx = distributed.split_for_process(registry.contexts(conversation.env_name, eval_contexts, seed, "eval"),
                                            "eval_contexts")
    local_reference = distributed.host_local_params(frozen["reference"])  # rollouts run on local devices only
    reference_eval: list[Conversation] | None = None
    run.start(loop.num_steps, start, algorithm)
    last: dict[str, float] = {}
    for it in range(start, loop.num_steps):
      t0 = time.time()
      # each process plays its block of the contexts (conversation keys are per context: same conversations
      # whichever process plays them)
      played = distributed.split_for_process(
          registry.contexts(conversation.env_name, contexts_per_batch, seed + 1000 * (it + 1), "train")
          if train_contexts is None else
          task_contexts.contexts_for_iteration(train_contexts, contexts_per_batch, it, seed))
      local_params = distributed.host_local_params(state.policy.params)
      batch = rollouts.collect(local_params, local_reference, played, it)
      t1 = time.time()
      judged = batch.conversations
      if value_rollouts:
        judged = rollouts.finish_with_reference(batch, local_reference, it)
      elif spec.single_turn:  # a turn-level judge sees the state and the new turn, not the student's reply
        judged = [ro.through_last_agent_turn(c) for c in judged]
      scores, judge_metrics = _score(spec, judge, batch, judged)
      rewards = rw.terminal_rewards(scores, batch.turn_mask)
      t2 = time.time()
      state, metrics = step(state, partitioner.put_batch(update_batch(batch, rewards, num_rows,
                                                                      hparams.microbatch_rows, hparams.length_buckets),
                                                         batch_sh), frozen)
      metrics = run.check_finite(jax.device_get(metrics), it + 1, watched=None)  # before anything is saved
      t3 = time.time()
      sampled = batch.timings["sampled_tokens"]
      metrics.update(judge_metrics,
                     conversation_turns=float(distributed.gather_rows(batch.num_agent_turns).mean()),
                     end_marker_rate=float(distributed.gather_rows(batch.ended_with_marker).mean()),
                     prompt_truncated_rate=float(distributed.gather_rows(batch.prompt_truncated).mean()),
                     collect_s=t1 - t0, decode_s=batch.timings["decode_s"], environment_s=batch.timings["env_s"],
                     judge_s=t2 - t1, update_s=t3 - t2,
                     decode_tokens_per_s=sampled / max(batch.timings["decode_s"], 1e-9),
                     update_tokens_per_s=float(distributed.gather_rows(batch.token_mask).sum()) / max(t3 - t2, 1e-9))
      done = it + 1
      if done % loop.eval_every == 0 or done == loop.num_steps:
        evaluator = rollouts.policy(distributed.host_local_params(state.policy.params), None, explore=False)
        ours = ro.collect(env, evaluator, eval_ctx, seed=seed + 1, iteration=-1).conversations
        if reference_eval is None:  # mu is fixed: play its evaluation conversations once
          reference_eval = ro.collect(env, evaluator.with_params(local_reference), eval_ctx, seed=seed + 1,
                                      iteration=-1).conversations
        metrics["win_rate_vs_reference"], metrics["win_rate_ci95"] = win_rate(eval_judge, ours, reference_eval)
        if hasattr(eval_judge, "rewards") or hasattr(eval_judge, "score"):
          metrics["eval_reward"] = float(distributed.gather_rows(judge_rewards(eval_judge, ours)).mean())
          metrics["eval_reward_reference"] = float(
              distributed.gather_rows(judge_rewards(eval_judge, reference_eval)).mean())
      last = run.write(done, metrics)
      run.bar.set_postfix(v_loss=f"{metrics['value_loss']:.3f}", kl=f"{metrics['kl_to_reference']:.3f}")
      run.bar.update(1)
      run.save(done, {"state": state, "reference": frozen["reference"]}, {"iteration": done, **fingerprint},
               final=done == loop.num_steps)
      if done < loop.num_steps and run.stop_requested():
        run.preempt(done, {"state": state, "reference": frozen["reference"]}, {"iteration": done, **fingerprint})
    return last
