"""Every jitted step of the stack as (jitted function, abstract sharded arguments), for compiling without running.

Each builder takes plain arguments (a T5Config, optimizers, a Partitioner over the target slice's devices, the
shapes) and returns an `AbstractStep` whose arguments are `jax.ShapeDtypeStruct`s carrying their shardings:
nothing is allocated, so a T5-XXL step for a v5e-256 lowers on a laptop (the technique of MaxText's
train_compile.py). The functions jitted are the trainers' own pure steps (training/sft.py, rl/actor_critic.py,
rl/scorer_steps.py, rl/ppo.py) with the trainers' shardings (training/state.py's layouts); only the sampler is
split here into its two programs, the prefill (encode, cross-attention K/V, an empty self-attention cache) and
one KV-cache decode step, which `models/decoding.sample` runs inside one while loop.

Departure from the running trainers, on purpose: the rollouts of train_rl run each process's sampler on its
local devices with replicated parameters (training/rl_trainer.py); here the sampler's parameters keep their
training shardings and the batch is data-parallel, which is how a slice too small for replicated T5-XXL weights
would have to sample. Its figures are therefore those of a sharded sampler.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtpo_jax import partitioning
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.mixture import mix_logits
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.rl import actor_critic as ac
from mtpo_jax.rl import ppo
from mtpo_jax.rl import scorer_steps
from mtpo_jax.training import sft
from mtpo_jax.training.scorer_trainer import _state_layout as scorer_layout
from mtpo_jax.training.sft_trainer import build_train_state_fns
from mtpo_jax.training.state import actor_critic_layout

STEP_NAMES = ("sft", "actor_critic", "scorer", "q_fit", "prefill", "decode", "mixture_prefill", "mixture_decode")


@dataclasses.dataclass(frozen=True)
class StepShapes:
  """The shapes each step compiles at. Defaults: the paper's T5-large run (digest A12; gin/experiments/
  pipeline_t5_large.gin): 16 contexts x 2 conversations x 10 agent turns per MTPO update (320 rows, padded to
  512 as train_rl pads them, in 64-row microbatches), 512 input and 64 turn tokens; SFT 64 x (512, 128); the
  scorers 32 pairs of 1,024 tokens; the Q fit 32 rows of input + turn tokens."""
  sft_batch: int = 64
  sft_input_length: int = 512
  sft_target_length: int = 128
  contexts: int = 16
  copies: int = 2
  turns: int = 10
  rl_input_length: int = 512
  turn_tokens: int = 64
  microbatch_rows: int = 64
  scorer_batch: int = 32
  scorer_input_length: int = 1024
  q_batch: int = 32

  @property
  def conversations(self) -> int:
    return self.contexts * self.copies

  @property
  def update_rows(self) -> int:
    """train_rl's row count: conversations x turns rounded up to a power of two (models/decoding.bucket)."""
    n = self.conversations * self.turns
    return 1 << max(0, (n - 1).bit_length())

  def tokens(self, step: str) -> int:
    """Tokens one call of `step` processes (the denominator of tokens/s figures)."""
    rows = {"sft": (self.sft_batch, self.sft_input_length + self.sft_target_length),
            "actor_critic": (self.conversations * self.turns, self.rl_input_length + self.turn_tokens),
            "scorer": (2 * self.scorer_batch, self.scorer_input_length),
            "q_fit": (self.q_batch, self.rl_input_length + self.turn_tokens),
            "prefill": (self.conversations, self.rl_input_length), "decode": (self.conversations, 1),
            "mixture_prefill": (self.conversations, self.rl_input_length), "mixture_decode": (self.conversations, 1)}
    b, t = rows[step]
    return b * t


@dataclasses.dataclass
class AbstractStep:
  """name; jitted: a Partitioner.jit function (lowers with the mesh and rules in scope); args: its abstract
  arguments; params: the number of trained parameters it updates or reads; loop_trips: how many times the step's
  loops run their bodies (the microbatches of the actor-critic update; 1 for a step without loops), which XLA's
  cost analysis counts once (compile_report scales by it)."""
  name: str
  jitted: Callable
  args: tuple
  params: int
  loop_trips: int = 1


def with_shardings(abstract: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of `abstract` that carry `shardings` (a matching tree, or one sharding for every leaf)."""
  if isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=shardings), abstract)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def data_parallel_size(partitioner: partitioning.Partitioner) -> int:
  """Devices a batch dimension splits over (the mesh axes the `batch` rule names)."""
  axes = partitioner.data_sharding(1).spec[0]
  axes = axes if isinstance(axes, tuple) else (axes,) if axes else ()
  return int(np.prod([partitioner.mesh.shape[a] for a in axes])) if axes else 1


def _count(params: Any) -> int:
  return sum(int(a.size) for a in jax.tree.leaves(params))


def _data(partitioner: partitioning.Partitioner, shape: tuple[int, ...], dtype=jnp.int32) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(shape, dtype, sharding=partitioner.data_sharding(len(shape)))


def sft_step(config: T5Config, tx: optax.GradientTransformation, schedule: optax.Schedule,
             partitioner: partitioning.Partitioner, shapes: StepShapes) -> AbstractStep:
  """training/sft.sft_train_step on a [sft_batch, input] x [sft_batch, target] batch."""
  model = T5(config)
  init_fn, specs = build_train_state_fns(model, tx, shapes.sft_input_length, shapes.sft_target_length, 0)
  key = jax.random.PRNGKey(0)  # outside the mesh context: eager ops fail on a compile-only mesh
  with partitioner.context():
    abstract = jax.eval_shape(init_fn, key)
  state_sh = partitioner.state_shardings(abstract, specs)
  b, s, t = shapes.sft_batch, shapes.sft_input_length, shapes.sft_target_length
  batch = {"encoder_input_tokens": _data(partitioner, (b, s)), "decoder_input_tokens": _data(partitioner, (b, t)),
           "decoder_target_tokens": _data(partitioner, (b, t)),
           "decoder_loss_weights": _data(partitioner, (b, t), jnp.float32)}
  jitted = partitioner.jit(functools.partial(sft.sft_train_step, model=model, tx=tx, schedule=schedule),
                           in_shardings=(state_sh, partitioner.batch_shardings(batch)),
                           out_shardings=(state_sh, partitioner.replicated), donate_argnums=0)
  return AbstractStep("sft", jitted, (with_shardings(abstract, state_sh), batch), _count(abstract.params))


def actor_critic_step(config: T5Config, policy_tx: optax.GradientTransformation,
                      value_tx: optax.GradientTransformation, hparams: ac.ActorCriticHParams,
                      partitioner: partitioning.Partitioner, shapes: StepShapes) -> AbstractStep:
  """rl/actor_critic.actor_critic_step (MTPO, MTPO-tau, RLHF: the critic's and the actor's update in one step)
  with train_rl's batch layout: update_rows rows of (input, turn tokens), [conversations, turns] bookkeeping."""
  policy, value = T5(config), T5Value(config)
  _, abstract, state_sh = actor_critic_layout(policy, value, policy_tx, value_tx, 0, shapes.rl_input_length,
                                              partitioner)
  n, c, t = shapes.update_rows, shapes.conversations, shapes.turns
  batch = {"encoder_ids": _data(partitioner, (n, shapes.rl_input_length)),
           "decoder_ids": _data(partitioner, (n, shapes.turn_tokens)),
           "token_mask": _data(partitioner, (n, shapes.turn_tokens), jnp.float32),
           "row_mask": _data(partitioner, (n,), jnp.float32), "behaviour_logp": _data(partitioner, (n,), jnp.float32)}
  replicated = partitioner.replicated
  batch.update(turn_rows=jax.ShapeDtypeStruct((c, t), jnp.int32, sharding=replicated),
               turn_mask=jax.ShapeDtypeStruct((c, t), jnp.float32, sharding=replicated),
               rewards=jax.ShapeDtypeStruct((c, t), jnp.float32, sharding=replicated))
  batch_sh = {k: v.sharding for k, v in batch.items()}
  hparams = dataclasses.replace(hparams, microbatch_rows=shapes.microbatch_rows)
  frozen_sh = {"reference": state_sh.policy.params}
  jitted = partitioner.jit(functools.partial(ac.actor_critic_step, hp=hparams, policy=policy, value=value,
                                             policy_tx=policy_tx, value_tx=value_tx),
                           in_shardings=(state_sh, batch_sh, frozen_sh), out_shardings=(state_sh, replicated),
                           donate_argnums=0)
  frozen = {"reference": with_shardings(abstract.policy.params, state_sh.policy.params)}
  trips = n // hparams.microbatch_rows if 0 < hparams.microbatch_rows < n else 1
  return AbstractStep("actor_critic", jitted, (with_shardings(abstract, state_sh), batch, frozen),
                      _count(abstract.policy.params) + _count(abstract.value.params), loop_trips=trips)


def _value_state(config: T5Config, tx: optax.GradientTransformation, partitioner: partitioning.Partitioner,
                 input_length: int) -> tuple[Any, Any]:
  _, abstract, state_sh = scorer_layout(T5Value(config), tx, input_length, 0, partitioner)
  return abstract, state_sh


def scorer_step(config: T5Config, tx: optax.GradientTransformation, schedule: optax.Schedule,
                partitioner: partitioning.Partitioner, shapes: StepShapes) -> AbstractStep:
  """rl/scorer_steps.reward_model_train_step (the Bradley-Terry reward model of RLHF-m; the joint preference
  model has the same shapes at half the rows) on scorer_batch pairs of scorer_input_length tokens."""
  model = T5Value(config)
  abstract, state_sh = _value_state(config, tx, partitioner, shapes.scorer_input_length)
  b, s = shapes.scorer_batch, shapes.scorer_input_length
  batch = {"ids_a": _data(partitioner, (b, s)), "ids_b": _data(partitioner, (b, s)),
           "label": _data(partitioner, (b,), jnp.float32)}
  jitted = partitioner.jit(functools.partial(scorer_steps.reward_model_train_step, model=model, tx=tx,
                                             schedule=schedule),
                           in_shardings=(state_sh, partitioner.batch_shardings(batch)),
                           out_shardings=(state_sh, partitioner.replicated), donate_argnums=0)
  return AbstractStep("scorer", jitted, (with_shardings(abstract, state_sh), batch), _count(abstract.params))


def q_fit_step(config: T5Config, tx: optax.GradientTransformation, partitioner: partitioning.Partitioner,
               shapes: StepShapes) -> AbstractStep:
  """rl/ppo.q_fit_step (Iterative PPO's regression of Q on logged returns) on q_batch rows of the (state, turn)
  ids, as training/q_function.QFunction jits it."""
  q_length = shapes.rl_input_length + shapes.turn_tokens
  model = T5Value(config)
  abstract, state_sh = _value_state(config, tx, partitioner, q_length)
  batch = {"q_ids": _data(partitioner, (shapes.q_batch, q_length)),
           "target": _data(partitioner, (shapes.q_batch,), jnp.float32)}
  jitted = partitioner.jit(functools.partial(ppo.q_fit_step, model=model, tx=tx),
                           in_shardings=(state_sh, partitioner.batch_shardings(batch)),
                           out_shardings=(state_sh, partitioner.replicated), donate_argnums=0)
  return AbstractStep("q_fit", jitted, (with_shardings(abstract, state_sh), batch), _count(abstract.params))


# THE SAMPLER'S TWO PROGRAMS

def prefill(model: T5, params: Any, input_ids: jax.Array, max_new_tokens: int) -> Any:
  """models/decoding.sample's setup: encode [B, S] and build the cache of `max_new_tokens` positions."""
  mask = (input_ids != model.config.pad_token_id).astype(jnp.int32)
  variables = {"params": params}
  encoded = model.apply(variables, input_ids, mask, method=T5.encode)
  return model.apply(variables, encoded, max_new_tokens, method=T5.init_cache), mask


def decode_token(model: T5, params: Any, tokens: jax.Array, mask: jax.Array, cache: Any,
                 keys: jax.Array) -> tuple[jax.Array, Any]:
  """One iteration of models/decoding.decode_loop: the cached decode step on tokens [B] and a sample per row."""
  logits, cache = model.apply({"params": params}, tokens[:, None], mask, cache, method=T5.decode_step)
  logits = logits[:, -1].astype(jnp.float32)
  return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32), cache


def mixture_prefill(model: T5, theta: Any, mu: Any, input_ids: jax.Array, max_new_tokens: int) -> Any:
  """models/mixture.sample_mixture's setup: both models' caches (MTPO-tau samples from their mixture)."""
  cache_t, mask = prefill(model, theta, input_ids, max_new_tokens)
  cache_m, _ = prefill(model, mu, input_ids, max_new_tokens)
  return (cache_t, cache_m), mask


def mixture_decode_token(model: T5, theta: Any, mu: Any, tau: jax.Array, tokens: jax.Array, mask: jax.Array,
                         caches: Any, keys: jax.Array) -> tuple[jax.Array, Any]:
  """One decode iteration of the geometric mixture (1 - tau) log pi_theta + tau log mu (digest A4)."""
  lt, ct = model.apply({"params": theta}, tokens[:, None], mask, caches[0], method=T5.decode_step)
  lm, cm = model.apply({"params": mu}, tokens[:, None], mask, caches[1], method=T5.decode_step)
  logits = mix_logits(lt, lm, tau)[:, -1].astype(jnp.float32)
  return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32), (ct, cm)


def _cache_shardings(partitioner: partitioning.Partitioner, cache: Any) -> Any:
  """K/V [B, L, heads, kv] split like the activations that fill them; the index replicated."""
  def pick(a):
    return partitioner.sharding(("batch", "length", "heads", "kv")) if a.ndim == 4 else partitioner.replicated
  return jax.tree.map(pick, cache)


def sampler_steps(config: T5Config, partitioner: partitioning.Partitioner, shapes: StepShapes,
                  mixture: bool) -> tuple[AbstractStep, AbstractStep]:
  """(prefill, decode) for the policy alone or (mixture=True) for the MTPO-tau mixture of policy and mu, on the
  conversations of one MTPO batch (every copy of every context plays at once), turn_tokens new tokens."""
  model = T5(config)
  x = jnp.ones((1, shapes.rl_input_length), jnp.int32)
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, x)["params"]
  p_specs = partitioning.logical_param_specs(boxed)
  abstract_params = nn.unbox(boxed)
  param_sh = jax.tree.map(lambda spec: partitioner.sharding(tuple(spec)), p_specs,
                          is_leaf=lambda s: isinstance(s, jax.sharding.PartitionSpec))
  params = with_shardings(abstract_params, param_sh)
  dp = data_parallel_size(partitioner)
  # every copy of every context plays at once, padded (as models/decoding.Sampler pads) to split over the data axes
  b, s, n = -(-shapes.conversations // dp) * dp, shapes.rl_input_length, shapes.turn_tokens
  ids = _data(partitioner, (b, s))
  keys = _data(partitioner, (b, 2), jnp.uint32)
  tokens = _data(partitioner, (b,))
  count = _count(abstract_params)
  if not mixture:
    fill = functools.partial(prefill, model, max_new_tokens=n)
    with partitioner.context():
      cache, mask = jax.eval_shape(fill, params, ids)
    cache_sh = _cache_shardings(partitioner, cache)
    mask_sh = partitioner.data_sharding(2)
    pre = partitioner.jit(fill, in_shardings=(param_sh, ids.sharding), out_shardings=(cache_sh, mask_sh))
    dec = partitioner.jit(functools.partial(decode_token, model),
                          in_shardings=(param_sh, tokens.sharding, mask_sh, cache_sh, keys.sharding),
                          out_shardings=(tokens.sharding, cache_sh), donate_argnums=3)
    return (AbstractStep("prefill", pre, (params, ids), count),
            AbstractStep("decode", dec, (params, tokens, with_shardings(mask, mask_sh),
                                         with_shardings(cache, cache_sh), keys), count))
  fill = functools.partial(mixture_prefill, model, max_new_tokens=n)
  with partitioner.context():
    caches, mask = jax.eval_shape(fill, params, params, ids)
  cache_sh = _cache_shardings(partitioner, caches)
  mask_sh = partitioner.data_sharding(2)
  tau = jax.ShapeDtypeStruct((), jnp.float32, sharding=partitioner.replicated)
  pre = partitioner.jit(fill, in_shardings=(param_sh, param_sh, ids.sharding), out_shardings=(cache_sh, mask_sh))
  dec = partitioner.jit(functools.partial(mixture_decode_token, model),
                        in_shardings=(param_sh, param_sh, partitioner.replicated, tokens.sharding, mask_sh, cache_sh,
                                      keys.sharding),
                        out_shardings=(tokens.sharding, cache_sh), donate_argnums=5)
  return (AbstractStep("mixture_prefill", pre, (params, params, ids), 2 * count),
          AbstractStep("mixture_decode", dec, (params, params, tau, tokens, with_shardings(mask, mask_sh),
                                               with_shardings(caches, cache_sh), keys), 2 * count))


def build_steps(names: tuple[str, ...], config: T5Config, partitioner: partitioning.Partitioner,
                shapes: StepShapes, optimizer: tuple[optax.GradientTransformation, optax.Schedule],
                hparams: ac.ActorCriticHParams = ac.ActorCriticHParams()) -> list[AbstractStep]:
  """The named steps (STEP_NAMES), every network trained with `optimizer` (the RL files give policy and value
  the same Adafactor)."""
  unknown = [n for n in names if n not in STEP_NAMES]
  if unknown:
    raise ValueError(f"unknown steps {unknown}; expected some of {', '.join(STEP_NAMES)}")
  tx, schedule = optimizer
  out: list[AbstractStep] = []
  for name in names:
    if name == "sft":
      out.append(sft_step(config, tx, schedule, partitioner, shapes))
    elif name == "actor_critic":
      out.append(actor_critic_step(config, tx, tx, hparams, partitioner, shapes))
    elif name == "scorer":
      out.append(scorer_step(config, tx, schedule, partitioner, shapes))
    elif name == "q_fit":
      out.append(q_fit_step(config, tx, partitioner, shapes))
    elif name in ("prefill", "decode"):
      out.append(sampler_steps(config, partitioner, shapes, False)[("prefill", "decode").index(name)])
    else:
      out.append(sampler_steps(config, partitioner, shapes, True)[("mixture_prefill", "mixture_decode").index(name)])
  return out
