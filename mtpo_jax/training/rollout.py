"""Plays conversations between a T5 policy and an environment and keeps exactly what the update needs.

    policy = TurnPolicy(Sampler(model, sampling), params, vocab, input_length=512)          # MTPO, RLHF
    policy = TurnPolicy(MixtureSampler(model, model, sampling),                             # MTPO-tau
                        MixtureParams(params, reference_params, tau), vocab, input_length=512)
    batch = collect(env, policy, contexts, copies=2, seed=0, iteration=it)                  # copies=1 for RLHF
    i, j = batch.pair_indices().T                                                           # the judged pairs

Each round samples one agent turn for every unfinished conversation (one batched sampler call), decodes it and
steps the environment, until every conversation is done or has `max_agent_turns` agent turns (papers/digest.md
A7: two conversations per context from the current policy; MTPO-tau samples them from the mixture, A4).

Every agent turn becomes one row holding the encoder ids the model was fed and the decoder ids it sampled
(EOS included, never re-tokenised from the text), with their log-probs under the sampling distribution.
Environment turns never become rows, so they never enter the policy loss.

Determinism: each (conversation, turn) samples with its own key hashed from (seed, iteration, context id, copy,
agent-turn index), and the environments are deterministic given the conversation, so a trajectory does not
depend on its batch position, on its neighbours or on which process plays it.

Edge cases: an empty turn (the model emits EOS first) is still a turn: its text is "" and its row holds the
single EOS token; the environment decides what it means. An agent turn containing `[end of conversation]` ends
the conversation (the environment marks it done and does not reply). Conversations that the environment ends at
different turns drop out of later rounds; the sampler pads each round's batch to a power-of-two bucket, so the
rounds reuse a handful of compiled programs. Histories longer than `input_length - 1` tokens lose their oldest
turns (dialogue_format's left truncation, counted in vocabulary tokens).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from mtpo_jax.text import dialogue_format as fmt
from mtpo_jax.text.packing import pack_ids
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.envs.base import Environment
from mtpo_jax.models.decoding import Sampler
from mtpo_jax.types import END_OF_CONVERSATION, Context, Conversation

HeaderFn = Callable[[Context], str]


def context_header(context: Context) -> str:
  """The first line of the agent's input (`dialogue_format.context_header` of the visible fields): the
  Education Dialogue input is then exactly `dialogue_format.teacher_input`, the negotiation one the seller SFT
  input of tasks/negotiation.py."""
  try:
    return fmt.context_header(context.visible)
  except ValueError as e:
    raise ValueError(f"context {context.context_id!r}: {e}; pass header_fn to TurnPolicy") from None


def render_input(conversation: Conversation, agent_role: str, max_tokens: int | None,
                 count_tokens: fmt.TokenCounter, header_fn: HeaderFn = context_header) -> tuple[str, bool]:
  """The text the policy sees before its next turn, and whether old turns were dropped.

  Roles are capitalised as in the SFT data ("Teacher", "Student", "Seller", "Buyer"); with the topic header
  this equals `dialogue_format.teacher_input(topic, turns, agent_role.capitalize(), max_tokens, count_tokens)`.
  """
  turns = [(t.role.capitalize(), t.text) for t in conversation.turns]
  return fmt.fit_history(header_fn(conversation.context), turns, f"{agent_role.capitalize()}:", max_tokens,
                         count_tokens)


def conversation_key(seed: int, iteration: int, context_id: str, copy: int, turn: int) -> np.ndarray:
  """A raw [2] uint32 sampling key for one agent turn of one conversation."""
  digest = hashlib.sha256(f"rollout:{seed}:{iteration}:{context_id}:{copy}:{turn}".encode()).digest()
  return np.frombuffer(digest[:8], dtype=np.uint32).copy()


class TurnSamples(NamedTuple):
  """One sampled agent turn per conversation (B of them), as numpy arrays.

  texts: B decoded strings (stripped, cut at EOS); encoder_ids [B, S] int32 (S = input_length, the ids fed to
  the sampler); decoder_ids [B, L] int32 (EOS included, PAD after it); logprobs [B, L] float32 under the
  sampling distribution (0 on padding); token_mask [B, L] float32; truncated [B] bool (old turns dropped).
  """
  texts: list[str]
  encoder_ids: np.ndarray
  decoder_ids: np.ndarray
  logprobs: np.ndarray
  token_mask: np.ndarray
  truncated: np.ndarray


class TurnPolicy:
  """The agent side of a rollout: render each conversation -> pack ids -> sample a batch -> decode text.

  `sampler` is a `Sampler` (the policy itself) or a `MixtureSampler` (MTPO-tau); `params` is what it takes
  (the policy's params, or `MixtureParams(theta, mu, tau)`). Inputs are packed to `input_length` (EOS
  appended); pick a power of two so the sampler adds no further padding.
  """

  def __init__(self, sampler: Sampler, params: Any, vocab: Vocabulary, input_length: int = 512,
               header_fn: HeaderFn = context_header):
    if input_length < 2:
      raise ValueError(f"input_length must be >= 2, got {input_length}")
    self.sampler, self.params, self.vocab = sampler, params, vocab
    self.input_length, self.header_fn = input_length, header_fn

  def with_params(self, params: Any) -> "TurnPolicy":
    """The same policy (and compiled sampler) with new parameters, e.g. after an update."""
    return TurnPolicy(self.sampler, params, self.vocab, self.input_length, self.header_fn)

  def _count(self, text: str) -> int:
    return len(self.vocab.encode(text))

  def encode(self, conversation: Conversation, agent_role: str) -> tuple[list[int], bool]:
    """Ids of the rendered input (no EOS; at most input_length - 1) and whether the history was truncated.

    Lines are budgeted one by one, and the tokens of the joined text can differ slightly; the budget is
    shrunk until the whole text fits, so the ids are exactly `vocab.encode(rendered text)` (unless the header and
    footer alone overflow, when the newest `input_length - 1` ids are kept).
    """
    limit = self.input_length - 1
    budget = limit
    for _ in range(8):
      text, truncated = render_input(conversation, agent_role, budget, self._count, self.header_fn)
      ids = self.vocab.encode(text)
      if len(ids) <= limit:
        return ids, truncated
      budget -= len(ids) - limit
    return ids[-limit:], True  # the header alone overflows: keep the newest tokens (pack_ids' left truncation)

  def sample_turns(self, conversations: Sequence[Conversation], agent_role: str, keys: np.ndarray) -> TurnSamples:
    """One agent turn per conversation; keys: [B, 2] raw per-conversation keys (`conversation_key`)."""
    encoded = [self.encode(c, agent_role) for c in conversations]
    ids = pack_ids([e[0] for e in encoded], self.input_length, truncate_left=True, add_eos=True)
    out = self.sampler(self.params, ids, jnp.asarray(keys))
    mask = (np.arange(out.tokens.shape[1])[None] < out.lengths[:, None]).astype(np.float32)
    texts = [self.vocab.decode(tokens).strip() for tokens in out.tokens]
    return TurnSamples(texts, ids, out.tokens.astype(np.int32), (out.logprobs * mask).astype(np.float32), mask,
                       np.array([e[1] for e in encoded], bool))


@dataclasses.dataclass
class RolloutBatch:
  """N agent-turn rows of C = len(contexts) * copies conversations with at most T agent turns each.

  Rows (one per agent turn, in round order; environment turns are never rows):
    encoder_ids [N, S] int32      the ids fed to the model (S = input_length; EOS-terminated, PAD-padded)
    decoder_ids [N, L] int32      the sampled ids, EOS included, PAD after it (L = max_new_tokens)
    logp_behaviour [N, L] f32     log-probs of decoder_ids under the sampling distribution (policy or mixture,
                                  at the sampling temperature); 0 where token_mask is 0
    token_mask [N, L] f32         1 on the sampled tokens (EOS included)
    conversation [N] int32        the row's conversation index in [0, C)
    turn [N] int32                the row's agent-turn index within its conversation
    prompt_truncated [N] bool     whether old turns were dropped from the input
  Conversations (index c = context_index * copies + copy):
    turn_rows [C, T] int32        row of each agent turn, -1 = none (T = the collect's max_agent_turns, or
                                  max_new_agent_turns when smaller; with `starts`, new turns only)
    turn_mask [C, T] f32          turn_rows >= 0
    context_index [C] int32       index into the `contexts` given to `collect`
    copy [C] int32                which of the context's copies
    conversations                 the C final Conversation records
    num_agent_turns [C] int32     agent turns played by this collect (beyond the start)
    ended_with_marker [C] bool    the last turn (either side's) says END_OF_CONVERSATION
  timings: seconds spent in the policy ("decode_s") and in the environment ("env_s"), and the number of
  sampled tokens ("sampled_tokens").
  """
  encoder_ids: np.ndarray
  decoder_ids: np.ndarray
  logp_behaviour: np.ndarray
  token_mask: np.ndarray
  conversation: np.ndarray
  turn: np.ndarray
  prompt_truncated: np.ndarray
  turn_rows: np.ndarray
  turn_mask: np.ndarray
  context_index: np.ndarray
  copy: np.ndarray
  conversations: list[Conversation]
  num_agent_turns: np.ndarray
  ended_with_marker: np.ndarray
  copies: int
  timings: dict[str, float] = dataclasses.field(default_factory=dict)

  @property
  def num_rows(self) -> int:
    return len(self.encoder_ids)

  def pair_indices(self) -> np.ndarray:
    """[P, 2] int32 conversation indices (i, j) of copies (0, 1), (2, 3), ... of each context; empty for copies=1."""
    per = np.arange(len(self.conversations), dtype=np.int32).reshape(-1, self.copies)
    return per[:, :self.copies // 2 * 2].reshape(-1, 2)

  def padded(self, num_rows: int) -> dict[str, np.ndarray]:
    """Fixed-shape arrays for a jitted update: rows padded to `num_rows` (row_mask [num_rows] marks real ones)."""
    n = self.num_rows
    if n > num_rows:
      raise ValueError(f"rollout has {n} rows; the bucket holds {num_rows}")
    pad = lambda x: np.concatenate([x, np.zeros((num_rows - n,) + x.shape[1:], x.dtype)])
    return {"encoder_ids": pad(self.encoder_ids), "decoder_ids": pad(self.decoder_ids),
            "logp_behaviour": pad(self.logp_behaviour), "token_mask": pad(self.token_mask),
            "row_mask": pad(np.ones(n, np.float32)), "turn_rows": self.turn_rows, "turn_mask": self.turn_mask}


def _says_end(text: str) -> bool:
  return END_OF_CONVERSATION in text.lower()


def _start_name(conversation: Conversation) -> str:
  return f"{conversation.context.context_id}@{len(conversation.turns)}"


def collect(env: Environment, policy: TurnPolicy, contexts: Sequence[Context] | None = None, copies: int = 1, *,
            seed: int = 0, iteration: int = 0, max_agent_turns: int | None = None,
            starts: Sequence[Conversation] | None = None, max_new_agent_turns: int | None = None) -> RolloutBatch:
  """Plays `copies` conversations per context (2 for MTPO/MTPO-tau, 1 for RLHF) until each is done or has
  min(max_agent_turns, env.max_agent_turns) agent turns. `seed` and `iteration` name the sampling keys.

  `starts` (instead of `contexts`): continue these partial conversations (each must be waiting for the agent),
  e.g. logged states for the single-turn baselines (`max_new_agent_turns=1`) or finishing a conversation after
  an alternative turn. Then `context_index` indexes `starts`, turn_rows counts only the new agent turns, and
  the sampling keys are named by (context id, prefix length), so starts must differ in one of them.
  """
  if (contexts is None) == (starts is None):
    raise ValueError("collect() takes exactly one of contexts or starts")
  if copies < 1:
    raise ValueError(f"copies must be >= 1, got {copies}")
  if starts is not None:
    if not starts:
      raise ValueError("collect() needs at least one start conversation")
    finished = [i for i, c in enumerate(starts) if c.done]
    if finished:
      raise ValueError(f"start conversations {finished[:5]} are already done; nothing to continue")
    ids = [_start_name(c) for c in starts]
    initial = list(starts)
  else:
    if not contexts:
      raise ValueError("collect() needs at least one context")
    ids = [c.context_id for c in contexts]
    initial = None
  if len(set(ids)) != len(ids):
    raise ValueError("context ids must be unique (they name the sampling keys); use copies for repeats")
  cap = env.max_agent_turns if max_agent_turns is None else min(max_agent_turns, env.max_agent_turns)
  if cap < 1:
    raise ValueError(f"max_agent_turns must be >= 1, got {cap}")
  if max_new_agent_turns is not None and max_new_agent_turns < 1:
    raise ValueError(f"max_new_agent_turns must be >= 1, got {max_new_agent_turns}")
  num_start = len(ids)
  context_index = np.repeat(np.arange(num_start, dtype=np.int32), copies)
  copy = np.tile(np.arange(copies, dtype=np.int32), num_start)
  convs = env.reset([contexts[k] for k in context_index]) if initial is None else [initial[k] for k in context_index]
  offset = [c.num_agent_turns for c in convs]
  new_cap = cap if max_new_agent_turns is None else max_new_agent_turns
  rounds = min(cap, new_cap)
  chunks: list[TurnSamples] = []
  row_conv: list[int] = []
  row_turn: list[int] = []
  decode_s = env_s = 0.0
  # PLAY: one batched sampler call per round, over the unfinished conversations only.
  for _ in range(rounds):
    live = [i for i, c in enumerate(convs)
            if not c.done and c.num_agent_turns < cap and c.num_agent_turns - offset[i] < new_cap]
    if not live:
      break
    turns = [convs[i].num_agent_turns - offset[i] for i in live]
    keys = np.stack([conversation_key(seed, iteration, ids[context_index[i]], int(copy[i]), convs[i].num_agent_turns)
                     for i in live])
    t0 = time.perf_counter()
    samples = policy.sample_turns([convs[i] for i in live], env.agent_role, keys)
    t1 = time.perf_counter()
    stepped, _ = env.step([convs[i] for i in live], samples.texts)
    decode_s += t1 - t0
    env_s += time.perf_counter() - t1
    for i, c in zip(live, stepped):
      convs[i] = c
    chunks.append(samples)
    row_conv += live
    row_turn += turns
  if not chunks:
    raise ValueError("the environment's reset returned only finished conversations; nothing to play")
  # ASSEMBLE
  turn_rows = np.full((len(convs), rounds), -1, np.int32)
  turn_rows[row_conv, row_turn] = np.arange(len(row_conv), dtype=np.int32)
  cat = lambda field: np.concatenate([getattr(s, field) for s in chunks])
  return RolloutBatch(
      encoder_ids=cat("encoder_ids"), decoder_ids=cat("decoder_ids"), logp_behaviour=cat("logprobs"),
      token_mask=cat("token_mask"), conversation=np.array(row_conv, np.int32), turn=np.array(row_turn, np.int32),
      prompt_truncated=cat("truncated"), turn_rows=turn_rows, turn_mask=(turn_rows >= 0).astype(np.float32),
      context_index=context_index, copy=copy, conversations=convs,
      num_agent_turns=np.array([c.num_agent_turns - o for c, o in zip(convs, offset)], np.int32),
      ended_with_marker=np.array([bool(c.turns) and _says_end(c.turns[-1].text) for c in convs], bool),
      copies=copies, timings={"decode_s": decode_s, "env_s": env_s, "sampled_tokens": float(cat("token_mask").sum())})


def collect_conversations(env: Environment, policy: TurnPolicy, contexts: Sequence[Context] | None = None,
                          copies: int = 1, *, chunk: int = 128, starts: Sequence[Conversation] | None = None,
                          **kwargs: Any) -> list[Conversation]:
  """The final conversations of `collect`, played `chunk` contexts (or starts) at a time so that large data
  sets do not build one huge sampler batch (and its KV caches). Sampling keys are per conversation, so the
  result equals one big `collect`'s."""
  items = list(contexts if starts is None else starts)
  out: list[Conversation] = []
  for lo in range(0, len(items), chunk):
    part = items[lo:lo + chunk]
    batch = (collect(env, policy, part, copies, **kwargs) if starts is None
             else collect(env, policy, starts=part, copies=copies, **kwargs))
    out += batch.conversations
  return out


# LOGGED STATES (single-turn data: papers/digest.md A8)

def state_before(conversation: Conversation, agent_turn: int) -> Conversation:
  """The partial conversation waiting for the agent's `agent_turn`-th turn (a logged state)."""
  index = [i for i, t in enumerate(conversation.turns) if t.is_agent][agent_turn]
  return dataclasses.replace(conversation, turns=conversation.turns[:index], done=False)


def logged_states(conversations: Sequence[Conversation], rng: np.random.Generator | tuple[int, int]
                  ) -> list[Conversation]:
  """One state per conversation, at an agent turn drawn uniformly from those it has (digest A8: single-turn
  data; the draw is [NOT FOUND] in the paper). rng: one generator drawn in order, or (seed, iteration) for one
  generator per conversation named by its context id, so a draw does not depend on the batch or the process."""
  def draw(c: Conversation) -> int:
    if isinstance(rng, np.random.Generator):
      return int(rng.integers(c.num_agent_turns))
    digest = hashlib.sha256(f"logged:{rng[0]}:{rng[1]}:{c.context.context_id}".encode()).digest()
    return int(np.random.default_rng(int.from_bytes(digest[:8], "little")).integers(c.num_agent_turns))
  return [state_before(c, draw(c)) for c in conversations if c.num_agent_turns]


def through_last_agent_turn(conversation: Conversation) -> Conversation:
  """The conversation cut after its last agent turn; done only if that turn itself ends it."""
  last = max(i for i, t in enumerate(conversation.turns) if t.is_agent)
  done = conversation.done and last == len(conversation.turns) - 1
  return dataclasses.replace(conversation, turns=conversation.turns[:last + 1], done=done)
