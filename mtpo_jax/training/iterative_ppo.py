"""Deep Iterative PPO (Jiang et al. 2025; papers/digest.md B3, Algorithm 1): batch-online policy iteration with a
token-level single-turn PPO as the improvement step.

Outer iteration i:
  COLLECT  deploy pi_i on a fresh batch of training contexts (rollout.collect, one conversation per context);
           the reward_fn scores each conversation (Education Dialogue: the ground-truth RubricJudge; negotiation:
           the sale price in $1000s; or a learned reward model). D_multi = every agent turn's (state, response, G).
  FIT Q_i  Monte-Carlo policy evaluation: a T5Value regressed on G (training/q_function.py), initialised from
           Q_{i-1} (warm start) or from pi_i's backbone; held-out MSE and explained variance are reported.
  PPO      prompts = the logged states; PPOHParams.steps times: sample states, generate one response each with the
           current pi, reward Q_i(s, a) - beta * log(pi/pi_i), PPO-clip (rl/ppo.py `ppo_step`).
  pi_{i+1} = the PPO result.

Everything is versioned under MODEL_DIR/iterations/{i:03d}/: conversations.jsonl (text + reward), rows.npz (the
rows of D_multi: ids, masks, returns, held-out flags), collect.json (its metrics; written last, it marks the phase
done), q/ (Q_i, orbax) and q.json (the fit report, likewise the marker), ppo.json. MODEL_DIR/checkpoints holds the
policy, the baseline value and both optimizer states after each finished iteration (meta: iteration, phase). A
restarted run resumes at phase granularity: it reloads a finished D_multi and a fitted Q_i instead of redoing
them, and redoes an unfinished PPO phase from the iteration's start. Every random draw is named by (seed,
iteration, step), so the resumed run continues with identical metrics. Plain arguments; Gin binds them in
gin_registry.py.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import atomic_files, distributed, partitioning
from mtpo_jax.checkpoints import CheckpointError, load_params
from mtpo_jax.data import task_contexts
from mtpo_jax.envs import registry
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import Sampler
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.oracles.bradley_terry import sale_reward_judge
from mtpo_jax.oracles.rubric import RubricJudge
from mtpo_jax.rl import ppo
from mtpo_jax.training import rollout as ro
from mtpo_jax.training.loop import LoopSettings, TrainLoop, write_json
from mtpo_jax.training.metrics import progress
from mtpo_jax.training.state import init_actor_critic_state
from mtpo_jax.rl import rewards as rw
from mtpo_jax.training.q_function import QFunction, QTargets, heldout_conversations, row_returns
from mtpo_jax.types import Conversation

log = logging.getLogger(__name__)
RewardFn = Callable[[Sequence[Conversation]], np.ndarray]
Q_INITS = ("warm_start", "policy")
ROW_KEYS = ("encoder_ids", "decoder_ids", "token_mask", "logp_behaviour", "conversation", "turn")


def reward_function(reward_fn: Any, env_name: str) -> RewardFn:
  """A callable conversations -> [C] (or [C, T]) rewards: `reward_fn` itself, its `rewards` (learned reward
  models, explicit-reward judges) or `score` (RubricJudge), or the environment's default when None."""
  if reward_fn is None:
    registry.check_env_name(env_name)
    return RubricJudge().score if env_name == "education" else sale_reward_judge().rewards
  for name in ("rewards", "score"):
    if hasattr(reward_fn, name):
      return getattr(reward_fn, name)
  if callable(reward_fn):
    return reward_fn
  raise TypeError(f"{type(reward_fn).__name__} gives no scalar reward (needs __call__, rewards() or score())")


# D_MULTI: COLLECT, SAVE, LOAD

def _merge(batches: Sequence[ro.RolloutBatch]) -> dict[str, Any]:
  """Rows and conversation bookkeeping of several collects as one D_multi (indices re-based)."""
  rows, turn_rows, conv_offset, row_offset = {k: [] for k in ROW_KEYS}, [], 0, 0
  for b in batches:
    for k in ROW_KEYS:
      v = getattr(b, k)
      rows[k].append(v + conv_offset if k == "conversation" else v)
    turn_rows.append(np.where(b.turn_rows >= 0, b.turn_rows + row_offset, -1))
    conv_offset += len(b.conversations)
    row_offset += b.num_rows
  data = {k: np.concatenate(v) for k, v in rows.items()}
  data["turn_rows"] = np.concatenate(turn_rows).astype(np.int32)
  data["turn_mask"] = (data["turn_rows"] >= 0).astype(np.float32)
  data["conversations"] = [c for b in batches for c in b.conversations]
  for k in ("num_agent_turns", "ended_with_marker", "prompt_truncated"):
    data[k] = np.concatenate([getattr(b, k) for b in batches])
  data["timings"] = {k: sum(b.timings[k] for b in batches) for k in ("decode_s", "env_s", "sampled_tokens")}
  return data


def _collect(env, policy: ro.TurnPolicy, contexts, per_collect: int, seed: int, iteration: int) -> dict[str, Any]:
  return _merge([ro.collect(env, policy, contexts[lo:lo + per_collect], seed=seed, iteration=iteration)
                 for lo in range(0, len(contexts), per_collect)])


def _save_dataset(directory: str, data: dict[str, Any], scores: np.ndarray, heldout: np.ndarray) -> None:
  """conversations.jsonl (one conversation per line: context, turns, reward, held-out flag) and rows.npz."""
  if jax.process_index() != 0:
    return
  os.makedirs(directory, exist_ok=True)
  lines = [json.dumps({"index": c, "context_id": conv.context.context_id, "visible": dict(conv.context.visible),
                       "reward": np.asarray(score).tolist(), "heldout": bool(heldout[c]), "done": conv.done,
                       "turns": [{"role": t.role, "text": t.text, "is_agent": t.is_agent} for t in conv.turns]},
                      default=str) + "\n" for c, (conv, score) in enumerate(zip(data["conversations"], scores))]
  atomic_files.write_text(os.path.join(directory, "conversations.jsonl"), "".join(lines))
  arrays = {k: data[k] for k in (*ROW_KEYS, "turn_rows", "turn_mask", "rewards", "returns", "heldout")}
  with atomic_files.replacing(os.path.join(directory, "rows.npz")) as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)


def _collect_phase(directory: str, fingerprint: dict[str, Any], collect: Callable[[], dict[str, Any]],
                   reward_fn: RewardFn, gamma: float, holdout: float, seed: int,
                   iteration: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """D_multi of iteration i and its metrics: loaded if the phase finished before, else collected and saved."""
  marker = os.path.join(directory, "collect.json")
  if os.path.exists(marker):
    with open(marker) as f:
      done = json.load(f)
    if done["fingerprint"] != json.loads(json.dumps(fingerprint)):
      raise CheckpointError(f"{directory} was written by a different run ({done['fingerprint']}); use a new MODEL_DIR")
    with np.load(os.path.join(directory, "rows.npz")) as z:
      return {k: z[k] for k in z.files}, done["metrics"]
  t0 = time.time()
  data = collect()
  t1 = time.time()
  scores = np.asarray(reward_fn(data["conversations"]), np.float32)
  data["rewards"] = rw.terminal_rewards(scores, data["turn_mask"])
  data["returns"] = row_returns(data["rewards"], data["turn_mask"], data["turn_rows"], len(data["conversation"]),
                                gamma)
  data["heldout"] = heldout_conversations(len(data["conversations"]), holdout, seed, iteration)
  total = data["rewards"].sum(1)
  timings = data["timings"]
  metrics = {"reward_mean": float(total.mean()), "reward_std": float(total.std()), "states": len(data["conversation"]),
             "conversation_turns": float(data["num_agent_turns"].mean()),
             "end_marker_rate": float(data["ended_with_marker"].mean()),
             "prompt_truncated_rate": float(data["prompt_truncated"].mean()),
             "collect_s": t1 - t0, "reward_s": time.time() - t1, "environment_s": timings["env_s"],
             "decode_tokens_per_s": timings["sampled_tokens"] / max(timings["decode_s"], 1e-9)}
  _save_dataset(directory, data, scores, data["heldout"])
  write_json(marker, {"fingerprint": fingerprint, "metrics": metrics})
  return {k: v for k, v in data.items() if isinstance(v, np.ndarray)}, metrics


# PPO ON THE LOGGED STATES

def _ppo_phase(state, step_fn, frozen, sampler: Sampler, partitioner: partitioning.Partitioner,
               data: dict[str, np.ndarray], run: TrainLoop, *, hparams: ppo.PPOHParams, q_length: int, seed: int,
               iteration: int) -> tuple[Any, dict[str, float]]:
  """`hparams.steps` PPO steps, each on `hparams.batch_size` logged states with one fresh response from the
  current policy."""
  states, sums, num_steps, batch_size = data["encoder_ids"], {}, hparams.steps, hparams.batch_size
  decode_s = update_s = sampled = 0.0
  bar = progress(num_steps, desc=f"ppo {iteration}")
  for k in range(num_steps):
    rows = np.random.default_rng([seed, iteration, 23, k]).choice(len(states), batch_size,
                                                                   replace=len(states) < batch_size)
    keys = np.stack([ro.conversation_key(seed, iteration, f"ppo-{k}", j, 0) for j in range(batch_size)])
    t0 = time.time()
    out = sampler(distributed.host_local_params(state.policy.params), states[rows], jnp.asarray(keys))
    mask = (np.arange(out.tokens.shape[1])[None] < out.lengths[:, None]).astype(np.float32)
    batch = {"encoder_ids": states[rows], "decoder_ids": out.tokens.astype(np.int32), "token_mask": mask}
    batch["q_ids"] = ppo.q_input_ids(batch["encoder_ids"], batch["decoder_ids"], mask, q_length)
    t1 = time.time()
    state, metrics = step_fn(state, partitioner.put_batch(batch), frozen)
    metrics = run.check_finite(jax.device_get(metrics), iteration + 1, watched=None)  # before anything is saved
    if run.stop_requested():  # abandon the phase: the rerun redoes this iteration's PPO from its start
      bar.close()
      run.preempt(None)
    t2 = time.time()
    decode_s, update_s, sampled = decode_s + t1 - t0, update_s + t2 - t1, sampled + float(mask.sum())
    for n, v in metrics.items():
      sums[n] = sums.get(n, 0.0) + v
    bar.set_postfix(q=f"{metrics['q_reward']:.3f}", kl=f"{metrics['kl_to_start']:.3f}")
    bar.update(1)
  bar.close()
  out = {f"ppo_{n}": v / num_steps for n, v in sums.items()}
  out.update(ppo_kl_to_start_last=metrics["kl_to_start"], ppo_q_reward_last=metrics["q_reward"],
             ppo_decode_tokens_per_s=sampled / max(decode_s, 1e-9),
             ppo_update_tokens_per_s=sampled * hparams.ppo_epochs / max(update_s, 1e-9))
  return state, out


# Q_i

def _q_phase(qf: QFunction, directory: str, data: dict[str, np.ndarray], q_ids: np.ndarray, init: Callable[[], Any],
             *, loss: str, normalize: bool, num_steps: int,
             iteration: int) -> tuple[Any, QTargets, dict[str, float]]:
  """(Q_i's params, its target transform, the fit report): loaded if a finished fit is on disk, else fit from
  `init()` (Q_{i-1} or pi_i's backbone) and saved."""
  restored = qf.restore(os.path.join(directory, "q"))
  if restored is not None and os.path.exists(os.path.join(directory, "q.json")):
    with open(os.path.join(directory, "q.json")) as f:
      return restored[0], restored[1], json.load(f)
  t0 = time.time()
  heldout = data["heldout"][data["conversation"]]
  targets = QTargets.fit(data["returns"][~heldout], loss, normalize)
  params, report = qf.fit(init(), q_ids, data["returns"], heldout, targets, num_steps, iteration)
  report["q_fit_s"] = time.time() - t0
  qf.save(os.path.join(directory, "q"), params, targets, {"iteration": iteration})
  write_json(os.path.join(directory, "q.json"), report)
  return params, targets, report


# THE LOOP

@dataclasses.dataclass(frozen=True)
class QSettings:
  """How each Q_i is fit (none is given by the paper, B5 [NOT FOUND]): `steps` regression steps of `batch_size`
  rows; `loss` (rl/ppo.py q_values: "mse" or a classification loss) on raw or normalised returns; initialised
  from Q_{i-1} ("warm_start") or pi_i's backbone ("policy"); `holdout_fraction` of the conversations held out
  for the fit report; `input_length` of (state, response) ids (None: the conversation's input_length +
  max_turn_tokens, never truncated); returns discounted by `gamma`."""
  steps: int = 1000
  batch_size: int = 32
  loss: str = "mse"
  normalize_targets: bool = False
  init: str = "warm_start"
  holdout_fraction: float = 0.1
  input_length: int | None = None
  gamma: float = 1.0

  def __post_init__(self):
    if self.steps < 1:
      raise ValueError(f"QSettings.steps must be >= 1, got {self.steps}")
    if self.init not in Q_INITS:
      raise ValueError(f"unknown QSettings.init {self.init!r}; expected one of {Q_INITS}")
    if not 0.0 < self.gamma <= 1.0:
      raise ValueError(f"QSettings.gamma must be in (0, 1], got {self.gamma}")
    if self.loss not in ppo.Q_LOSSES:
      raise ValueError(f"unknown Q loss {self.loss!r}; expected one of {ppo.Q_LOSSES}")


def train_iterative_ppo(model_dir: str, policy_config: T5Config, *, reward_fn: Any = None,
                        hparams: ppo.PPOHParams = ppo.PPOHParams(), q: QSettings = QSettings(),
                        policy_optimizer: tuple[optax.GradientTransformation, Any],
                        value_optimizer: tuple[optax.GradientTransformation, Any],
                        q_optimizer: tuple[optax.GradientTransformation, Any],
                        init_checkpoint: str | None = None,
                        mesh_spec: partitioning.MeshSpec = partitioning.MeshSpec(),
                        conversation: ConversationSettings = ConversationSettings(),
                        loop: LoopSettings = LoopSettings(num_steps=10, batch_size=256, keep_checkpoints=2),
                        contexts_per_collect: int = 64,
                        contexts: task_contexts.ContextSource = task_contexts.ContextSource()) -> dict[str, float]:
  """Runs Algorithm 1 for loop.num_steps outer iterations of loop.batch_size conversations from `init_checkpoint`
  (the SFT policy pi_0; random weights when None), playing as `conversation` says (`contexts_per_collect`
  conversations per sampler batch); returns the last iteration's metrics. `reward_fn`: a callable or a judge with
  `rewards` / `score` (None: the environment's own). PPO's steps and batch size are hparams.steps and
  hparams.batch_size; batch sizes must divide over the mesh's data x fsdp axes. `contexts`: where the
  training contexts come from (data/task_contexts.ContextSource; default the environment's generated stream)."""
  env_name, seed, input_length = conversation.env_name, loop.seed, conversation.input_length
  reward = reward_function(reward_fn, env_name)
  if contexts_per_collect < 1:
    raise ValueError(f"contexts_per_collect must be >= 1, got {contexts_per_collect}")
  vocab = conversation.vocabulary()
  q_length = q.input_length or input_length + conversation.max_turn_tokens
  with TrainLoop(model_dir, mesh_spec, save_every=1, keep_checkpoints=loop.keep_checkpoints, vocab=vocab,
                 model_config=policy_config,
                 fall_back=loop.restore_earlier_if_corrupt) as run:
    partitioner = run.partitioner
    partitioner.check_batch_size(hparams.batch_size, "PPOHParams.batch_size")
    partitioner.check_batch_size(q.batch_size, "QSettings.batch_size")
    init_params = load_params(init_checkpoint) if init_checkpoint else None  # CheckpointError names a missing path

    # MODELS, STATE, RESUME
    policy, value = T5(policy_config), T5Value(policy_config)
    (tx_p, _), (tx_v, _), (tx_q, _) = policy_optimizer, value_optimizer, q_optimizer
    state, shardings, abstract = init_actor_critic_state(policy, value, init_params, tx_p, tx_v, seed, input_length,
                                                         partitioner)
    qf = QFunction(value, tx_q, partitioner, q_length, q.batch_size, q.loss, seed)
    fingerprint = {"env_name": env_name, "input_length": input_length, "max_turn_tokens": conversation.max_turn_tokens,
                   "conversations_per_iteration": loop.batch_size, "max_agent_turns": conversation.max_agent_turns,
                   "gamma": q.gamma, "q_loss": q.loss, "q_init": q.init, "seed": seed}
    if contexts.name:
      fingerprint["contexts"] = contexts.name
    restored = run.restore(abstract, shardings, fingerprint)
    start = 0
    if restored is not None:
      state, start = restored[0], int(restored[1]["iteration"])
      log.info("resumed after iteration %d (phase %s)", start, restored[1].get("phase"))
    iteration_dir = lambda i: os.path.join(model_dir, "iterations", f"{i:03d}")
    q_prev = None
    if start > 0 and q.init == "warm_start":
      saved = qf.restore(os.path.join(iteration_dir(start - 1), "q"))
      q_prev = saved[0] if saved else None

    train_contexts = contexts.load(model_dir)

    # ROLLOUTS AND THE JITTED PPO STEP
    env = registry.make_environment(conversation, seed, policy_config=policy_config, vocab=vocab)
    sampler = Sampler(policy, conversation.sampling())
    turn_policy = ro.TurnPolicy(sampler, None, vocab, input_length)  # params set per iteration
    batch_sh = {k: partitioner.data_sharding(2) for k in ("encoder_ids", "decoder_ids", "token_mask", "q_ids")}
    frozen_sh = {"reference": shardings.policy.params, "q": qf.shardings.params, "q_shift": partitioner.replicated,
                 "q_scale": partitioner.replicated}
    step_fn = partitioner.jit(functools.partial(ppo.ppo_step, hp=hparams, policy=policy, value=value,
                                                policy_tx=tx_p, value_tx=tx_v, q_loss=q.loss),
                              in_shardings=(shardings, batch_sh, frozen_sh),
                              out_shardings=(shardings, partitioner.replicated), donate_argnums=0)
    run.start(loop.num_steps, start, "iterative ppo")
    last: dict[str, float] = {}
    for i in range(start, loop.num_steps):
      directory = iteration_dir(i)
      os.makedirs(directory, exist_ok=True)
      # COLLECT: deploy pi_i
      played = (registry.contexts(env_name, loop.batch_size, seed + 1000 * (i + 1), "train")
                if train_contexts is None else
                task_contexts.contexts_for_iteration(train_contexts, loop.batch_size, i, seed))
      # every process plays every context (identical data; the Q fit and PPO batches are then global batches
      # that each process holds whole), decoding on its own devices
      collect = lambda: _collect(env, turn_policy.with_params(distributed.host_local_params(state.policy.params)),
                                 played, contexts_per_collect, seed, i)
      data, metrics = _collect_phase(directory, fingerprint, collect, reward, q.gamma, q.holdout_fraction, seed, i)
      metrics = dict(metrics)
      if run.stop_requested():  # D_multi is on disk; the rerun reloads it
        run.preempt(None)

      # FIT Q_i by Monte-Carlo regression
      q_ids = ppo.q_input_ids(data["encoder_ids"], data["decoder_ids"], data["token_mask"], q_length)
      init = lambda: q_prev if q_prev is not None else qf.params_from_policy(state.policy.params)
      q_params, targets, q_report = _q_phase(qf, directory, data, q_ids, init, loss=q.loss,
                                             normalize=q.normalize_targets, num_steps=q.steps, iteration=i)
      metrics.update(q_report)
      if run.stop_requested():  # Q_i is on disk; the rerun reloads it
        run.preempt(None)

      # PPO on D_single = the logged states, Q_i the reward model, KL to pi_i
      t0 = time.time()
      frozen = {"reference": jax.tree.map(jnp.copy, state.policy.params), "q": q_params,
                "q_shift": jnp.float32(targets.shift), "q_scale": jnp.float32(targets.scale)}
      state, ppo_metrics = _ppo_phase(state, step_fn, frozen, sampler, partitioner, data, run, hparams=hparams,
                                      q_length=q_length, seed=seed, iteration=i)
      ppo_metrics["ppo_s"] = time.time() - t0
      write_json(os.path.join(directory, "ppo.json"), ppo_metrics)
      metrics.update(ppo_metrics)
      last = run.write(i + 1, metrics)
      run.save(i + 1, state, {"iteration": i + 1, "phase": "ppo", **fingerprint}, final=True)
      if i + 1 < loop.num_steps and run.stop_requested():
        run.preempt(None)  # iteration i + 1 is saved
      q_prev = q_params if q.init == "warm_start" else None
      log.info("iteration %d: reward %.3f, Q held-out EV %.3f, PPO Q reward %.3f, KL to pi_i %.4f", i,
               metrics["reward_mean"], metrics["q_heldout_ev"], metrics["ppo_q_reward"],
               metrics["ppo_kl_to_start_last"])
      run.bar.update(1)
  return last
