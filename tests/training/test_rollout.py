"""Rollouts keep exactly what the policy saw and sampled, for the plain policy and MTPO-tau's mixture; copies
share contexts; order, batch position and finishing times do not change a trajectory; rounds do not recompile.

A tiny random T5 over the committed vocabulary plays Education Dialogue (scripted student) and negotiation
(scripted buyer). Compilation dominates on CPU, so every test shares one Sampler and one MixtureSampler (all
collects stay within one batch bucket) and fixed-shape teacher-forced scorers."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtpo_jax.text import dialogue_format as fmt
from mtpo_jax.text.vocabulary import EOS_ID, PAD_ID
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent
from mtpo_jax.envs.negotiation.catalog import sample_contexts
from mtpo_jax.envs.negotiation.env import NegotiationEnv
from mtpo_jax.models import mixture as mx
from mtpo_jax.models.decoding import SampleOutput, Sampler, SamplingConfig
from mtpo_jax.models.t5 import T5
from mtpo_jax.testing import project_vocabulary, tiny_config
from mtpo_jax.training import rollout as ro
from mtpo_jax.types import END_OF_CONVERSATION, Conversation

VOCAB = project_vocabulary()
MODEL = T5(tiny_config(VOCAB.vocab_size))
SAMPLING = SamplingConfig(max_new_tokens=16)
INPUT_LENGTH = 128
ROWS = 64  # teacher-forced scoring pads rows to this, so it compiles once
TAU = 0.3


@pytest.fixture(scope="module")
def setup():
  x = jnp.ones((1, 4), jnp.int32)
  init = jax.jit(MODEL.init)
  params = []
  for seed in (0, 1):  # the policy and the reference mu
    p = nn.unbox(init(jax.random.PRNGKey(seed), x, x)["params"])
    params.append(dict(p, logits_dense=p["logits_dense"].at[:, EOS_ID].add(2.0)))  # turns of 2-16 tokens
  sampler = Sampler(MODEL, SAMPLING)
  mixture = mx.MixtureSampler(MODEL, MODEL, SAMPLING)
  return params[0], params[1], sampler, mixture


def _education(n, seed=1):
  records = generator.generate(n, seed, "eval")
  return [record_to_conversation(r, f"edu{seed}-{i}").context for i, r in enumerate(records)]


def _count(text):
  return len(VOCAB.encode(text))


@jax.jit
def _tf_logprobs(params, enc, dec):
  return mx.teacher_forced_logprobs(MODEL, params, enc, dec)


@jax.jit
def _tf_mixture_logprobs(pt, pm, enc, dec, tau):
  return mx.teacher_forced_mixture_logprobs(MODEL, pt, MODEL, pm, enc, dec, tau)


def _history_before(conv: Conversation, agent_turn: int) -> Conversation:
  index = [i for i, t in enumerate(conv.turns) if t.is_agent][agent_turn]
  return dataclasses.replace(conv, turns=conv.turns[:index], done=False)


def check_batch(b: ro.RolloutBatch, env, contexts, copies: int, cap: int) -> None:
  """Shapes, masks, row <-> turn bookkeeping, encoder ids = the rendered input, decoder ids = the turn text."""
  c, n = len(contexts) * copies, b.num_rows
  assert len(b.conversations) == c and b.turn_rows.shape == (c, cap) and b.turn_mask.shape == (c, cap)
  assert b.encoder_ids.shape == (n, INPUT_LENGTH) and b.encoder_ids.dtype == np.int32
  for a in (b.decoder_ids, b.logp_behaviour, b.token_mask):
    assert a.shape == (n, SAMPLING.max_new_tokens)
  assert b.conversation.shape == b.turn.shape == b.prompt_truncated.shape == (n,)
  # Environment turns never become rows; every agent turn does, exactly once.
  assert n == int(b.turn_mask.sum()) == int(b.num_agent_turns.sum()) == sum(x.num_agent_turns for x in b.conversations)
  assert sorted(b.turn_rows[b.turn_rows >= 0].tolist()) == list(range(n))
  np.testing.assert_array_equal(b.turn_rows[b.conversation, b.turn], np.arange(n))
  np.testing.assert_array_equal(b.turn_mask.sum(1), b.num_agent_turns)
  assert (b.num_agent_turns <= cap).all() and (b.num_agent_turns >= 1).all()
  # Turns fill each conversation's first slots.
  assert all((b.turn_rows[i, :k] >= 0).all() and (b.turn_rows[i, k:] == -1).all()
             for i, k in enumerate(b.num_agent_turns))
  assert (b.context_index == np.repeat(np.arange(len(contexts)), copies)).all()
  assert (b.copy == np.tile(np.arange(copies), len(contexts))).all()
  for i, conv in enumerate(b.conversations):
    assert conv.context == contexts[b.context_index[i]]
    assert conv.done or conv.num_agent_turns == cap
    assert b.ended_with_marker[i] == (END_OF_CONVERSATION in conv.turns[-1].text.lower())
  # Masks: a prefix of ones per row, logp zero off the mask and <= 0 on it, EOS last unless cut at L.
  lengths = b.token_mask.sum(1).astype(int)
  np.testing.assert_array_equal(b.token_mask, np.arange(b.token_mask.shape[1])[None] < lengths[:, None])
  assert (b.logp_behaviour[b.token_mask == 0] == 0).all() and (b.logp_behaviour[b.token_mask == 1] <= 0).all()
  assert (b.decoder_ids[b.token_mask == 0] == PAD_ID).all()
  for row in range(n):
    conv = b.conversations[b.conversation[row]]
    turn = [t for t in conv.turns if t.is_agent][b.turn[row]]
    ids = b.decoder_ids[row, :lengths[row]].tolist()
    assert EOS_ID not in ids[:-1] and (ids[-1] == EOS_ID or lengths[row] == SAMPLING.max_new_tokens)
    assert VOCAB.decode(b.decoder_ids[row]).strip() == turn.text
    text, truncated = ro.render_input(_history_before(conv, b.turn[row]), env.agent_role, INPUT_LENGTH - 1, _count)
    expected = VOCAB.encode(text) + [EOS_ID]
    assert b.encoder_ids[row].tolist() == expected + [PAD_ID] * (INPUT_LENGTH - len(expected))
    assert b.prompt_truncated[row] == truncated


def _padded(b):
  d = b.padded(ROWS)
  return jnp.asarray(d["encoder_ids"]), jnp.asarray(d["decoder_ids"]), b.num_rows


def test_education_rows_hold_what_the_policy_saw_and_sampled(setup):
  params, _, sampler, _ = setup
  contexts = _education(3)
  env = EducationEnv(ScriptedStudent(), max_agent_turns=3)
  b = ro.collect(env, ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH), contexts, copies=2, seed=1)
  check_batch(b, env, contexts, copies=2, cap=3)
  # The input is exactly dialogue_format.teacher_input (what the SFT teacher was trained on).
  for row in range(b.num_rows):
    conv = b.conversations[b.conversation[row]]
    hist = [(t.role.capitalize(), t.text) for t in _history_before(conv, b.turn[row]).turns]
    text, _ = fmt.teacher_input(conv.context.visible["topic"], hist, "Teacher", INPUT_LENGTH - 1, _count)
    expected = VOCAB.encode(text) + [EOS_ID]
    assert b.encoder_ids[row, :len(expected)].tolist() == expected
  # Some turns stopped at EOS, some ran to max_new_tokens (both kinds of row are exercised).
  ends = b.decoder_ids[np.arange(b.num_rows), b.token_mask.sum(1).astype(int) - 1]
  assert (ends == EOS_ID).any() and (b.token_mask.sum(1) == SAMPLING.max_new_tokens).any()
  # Behaviour log-probs are the policy's teacher-forced log-probs of the stored ids.
  enc, dec, n = _padded(b)
  tf = np.asarray(_tf_logprobs(params, enc, dec))[:n] * b.token_mask
  np.testing.assert_allclose(b.logp_behaviour, tf, atol=1e-4)
  # Two copies per context: same context, different (independently sampled) text.
  np.testing.assert_array_equal(b.pair_indices(), [[0, 1], [2, 3], [4, 5]])
  for i, j in b.pair_indices():
    assert b.conversations[i].context == b.conversations[j].context
    assert b.conversations[i].turns[0].text != b.conversations[j].turns[0].text


def test_negotiation_rows(setup):
  params, _, sampler, _ = setup
  contexts = sample_contexts(3, seed=4)
  env = NegotiationEnv(max_agent_turns=3, seed=0)
  b = ro.collect(env, ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH), contexts, copies=2, seed=2, iteration=5)
  check_batch(b, env, contexts, copies=2, cap=3)
  first = VOCAB.decode(b.encoder_ids[0])
  assert first.startswith("car: body ") and first.endswith("Seller:") and "budget" not in first
  assert [t.role for t in b.conversations[0].turns[:2]] == ["seller", "buyer"]
  enc, dec, n = _padded(b)
  np.testing.assert_allclose(b.logp_behaviour, np.asarray(_tf_logprobs(params, enc, dec))[:n] * b.token_mask,
                             atol=1e-4)


def test_mixture_rollout_logprobs_are_the_mixtures(setup):
  params, ref, sampler, mixture = setup
  contexts = _education(2, seed=2)
  env = EducationEnv(ScriptedStudent(), max_agent_turns=2)
  b = ro.collect(env, ro.TurnPolicy(mixture, mx.MixtureParams(params, ref, TAU), VOCAB, INPUT_LENGTH), contexts,
                 copies=2, seed=3)
  check_batch(b, env, contexts, copies=2, cap=2)
  enc, dec, n = _padded(b)
  mixed = np.asarray(_tf_mixture_logprobs(params, ref, enc, dec, TAU))[:n] * b.token_mask
  np.testing.assert_allclose(b.logp_behaviour, mixed, atol=1e-4)
  own = np.asarray(_tf_logprobs(params, enc, dec))[:n] * b.token_mask
  assert np.abs(own - mixed).max() > 1e-3
  # tau = 0 plays exactly the policy's conversations (same keys, same tokens).
  plain = ro.collect(env, ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH), contexts, copies=2, seed=3)
  zero = ro.collect(env, ro.TurnPolicy(mixture, mx.MixtureParams(params, ref, 0.0), VOCAB, INPUT_LENGTH), contexts,
                    copies=2, seed=3)
  assert [c.turns for c in plain.conversations] == [c.turns for c in zero.conversations]
  np.testing.assert_array_equal(plain.decoder_ids, zero.decoder_ids)
  np.testing.assert_allclose(plain.logp_behaviour, zero.logp_behaviour, atol=1e-5)


def test_trajectories_do_not_depend_on_context_order(setup):
  params, _, sampler, _ = setup
  contexts = _education(3, seed=3)
  env = EducationEnv(ScriptedStudent(), max_agent_turns=2)
  policy = ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH)
  fwd = ro.collect(env, policy, contexts, copies=2, seed=7, iteration=1)
  rev = ro.collect(env, policy, contexts[::-1], copies=2, seed=7, iteration=1)

  def by_id(b):
    return {(c.context.context_id, int(k)): c.turns for c, k in zip(b.conversations, b.copy)}

  def rows_by_id(b):
    return {(b.conversations[b.conversation[r]].context.context_id, int(b.copy[b.conversation[r]]), int(b.turn[r])):
            (b.decoder_ids[r].tolist(), b.encoder_ids[r].tolist()) for r in range(b.num_rows)}

  assert by_id(fwd) == by_id(rev)
  assert rows_by_id(fwd) == rows_by_id(rev)
  other = ro.collect(env, policy, contexts, copies=2, seed=7, iteration=2)  # a new iteration draws new samples
  assert by_id(other) != by_id(fwd)


class StaggeredEnv(EducationEnv):
  """Education env that also ends conversation k after 1 + (k mod 3) teacher turns (by context id)."""

  def __init__(self, limits, max_agent_turns):
    super().__init__(ScriptedStudent(), max_agent_turns)
    self.limits = limits

  def step(self, conversations, agent_turns):
    out, _ = super().step(conversations, agent_turns)
    out = [dataclasses.replace(c, done=c.done or c.num_agent_turns >= self.limits[c.context.context_id]) for c in out]
    return out, np.array([c.done for c in out])


def test_conversations_finishing_at_different_turns_share_one_compiled_sampler(setup):
  params, _, sampler, _ = setup
  contexts = _education(3, seed=4)
  env = StaggeredEnv({c.context_id: 1 + k % 3 for k, c in enumerate(contexts)}, max_agent_turns=4)
  b = ro.collect(env, ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH), contexts, copies=2, seed=0)
  check_batch(b, env, contexts, copies=2, cap=4)
  np.testing.assert_array_equal(b.num_agent_turns, [1, 1, 2, 2, 3, 3])
  # Rounds sampled 6, then 4, then 2 conversations: only the unfinished ones.
  assert np.bincount(b.turn).tolist() == [6, 4, 2]
  # Every collect in this module (batches of <= 8 conversations) reused one program per sampler.
  assert sampler.num_compilations == 1


def test_max_agent_turns_cap(setup):
  params, _, sampler, _ = setup
  contexts = _education(2, seed=5)
  env = EducationEnv(ScriptedStudent(), max_agent_turns=10)
  b = ro.collect(env, ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH), contexts, copies=1, max_agent_turns=2)
  check_batch(b, env, contexts, copies=1, cap=2)
  assert (b.num_agent_turns == 2).all() and not any(c.done for c in b.conversations)
  assert b.pair_indices().shape == (0, 2)


class ScriptedSampler:
  """Stands in for a Sampler: per-row canned turns chosen by the row's key; log-probs -1 per token."""

  def __init__(self, texts):
    self.rows = [VOCAB.encode(t) + [EOS_ID] for t in texts]
    self.calls = []

  def __call__(self, params, input_ids, rng):
    keys = np.asarray(rng)
    self.calls.append(len(input_ids))
    tokens = np.zeros((len(input_ids), SAMPLING.max_new_tokens), np.int32)
    lengths = np.zeros(len(input_ids), np.int32)
    for i, k in enumerate(keys):
      ids = self.rows[int(k[0]) % len(self.rows)][:SAMPLING.max_new_tokens]
      tokens[i, :len(ids)], lengths[i] = ids, len(ids)
    logprobs = -(np.arange(tokens.shape[1])[None] < lengths[:, None]).astype(np.float32)
    return SampleOutput(tokens, logprobs, lengths)


def test_empty_turns_and_end_marker():
  texts = ["", f"Thanks, that is all. {END_OF_CONVERSATION}", "Let us look at the first idea together."]
  sampler = ScriptedSampler(texts)
  contexts = _education(4, seed=6)
  env = EducationEnv(ScriptedStudent(), max_agent_turns=3)
  b = ro.collect(env, ro.TurnPolicy(sampler, None, VOCAB, INPUT_LENGTH), contexts, copies=2, seed=11)
  check_batch(b, env, contexts, copies=2, cap=3)
  seen = set()
  for row in range(b.num_rows):
    conv = b.conversations[b.conversation[row]]
    text = [t for t in conv.turns if t.is_agent][b.turn[row]].text
    seen.add(text)
    if text == "":  # an empty turn is still a turn: one EOS token, answered by the student
      assert b.decoder_ids[row, 0] == EOS_ID and b.token_mask[row].sum() == 1
    if END_OF_CONVERSATION in text:  # the agent ended it: no reply, no later turns
      assert conv.turns[-1].text == text and conv.done and b.turn[row] == b.num_agent_turns[b.conversation[row]] - 1
      assert b.ended_with_marker[b.conversation[row]]
  assert seen == set(texts)
  assert sampler.calls == sorted(sampler.calls, reverse=True) and sampler.calls[0] == 8


def test_overlong_histories_are_truncated_from_the_left():
  long = "We will go through this idea slowly, one careful step after another, with an example. " * 3
  sampler = ScriptedSampler([long])
  contexts = _education(1, seed=7)
  length = 32
  env = EducationEnv(ScriptedStudent(), max_agent_turns=3)
  b = ro.collect(env, ro.TurnPolicy(sampler, None, VOCAB, length), contexts, seed=0)
  assert b.prompt_truncated.tolist() == [False, True, True]
  for row in range(b.num_rows):
    ids = b.encoder_ids[row]
    n = int((ids != PAD_ID).sum())
    assert ids[n - 1] == EOS_ID and n <= length
    text = VOCAB.decode(ids)
    assert text.startswith("topic: ") and text.endswith("Teacher:")
    assert (fmt.TRUNCATION_MARKER in text) == b.prompt_truncated[row]


def test_rejects_bad_arguments(setup):
  params, _, sampler, _ = setup
  policy = ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH)
  env = EducationEnv(ScriptedStudent())
  with pytest.raises(ValueError, match="at least one"):
    ro.collect(env, policy, [])
  with pytest.raises(ValueError, match="copies"):
    ro.collect(env, policy, _education(1), copies=0)
  with pytest.raises(ValueError, match="unique"):
    ro.collect(env, policy, _education(1) * 2)



def test_continue_from_logged_states(setup):
  """Single-turn baselines: one new agent turn from given partial conversations; rows hold only the new turn."""
  params, _, sampler, _ = setup
  env = EducationEnv(ScriptedStudent(), max_agent_turns=3)
  policy = ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH)
  full = ro.collect(env, policy, _education(2), seed=3)
  starts = [_history_before(conv, 1) for conv in full.conversations if conv.num_agent_turns >= 2]
  assert starts, "the scripted student ended every conversation after one turn"
  b = ro.collect(env, policy, starts=starts, copies=2, seed=3, max_new_agent_turns=1)
  c = 2 * len(starts)
  assert b.turn_rows.shape == (c, 1) and b.num_rows == c and (b.num_agent_turns == 1).all()
  for k, conv in enumerate(b.conversations):
    start = starts[b.context_index[k]]
    assert conv.turns[:len(start.turns)] == start.turns and conv.num_agent_turns == start.num_agent_turns + 1
    # the row's input is the rendered start state
    hist = [(t.role.capitalize(), t.text) for t in start.turns]
    text, _ = fmt.teacher_input(conv.context.visible["topic"], hist, "Teacher", INPUT_LENGTH - 1, _count)
    row = b.turn_rows[k, 0]
    expected = VOCAB.encode(text) + [EOS_ID]
    assert b.encoder_ids[row, :len(expected)].tolist() == expected
  # the two copies of one state are sampled with different keys
  assert any(b.conversations[i].turns[-2:] != b.conversations[j].turns[-2:] for i, j in b.pair_indices())
  # continuing to the end (single-turn-value labels) plays up to the environment's cap
  rest = ro.collect(env, policy, starts=starts, seed=4)
  assert all(c.done or c.num_agent_turns == 3 for c in rest.conversations)
  with pytest.raises(ValueError, match="exactly one of contexts or starts"):
    ro.collect(env, policy, _education(1), starts=starts)
  with pytest.raises(ValueError, match="already done"):
    ro.collect(env, policy, starts=[dataclasses.replace(starts[0], done=True)])
  with pytest.raises(ValueError, match="unique"):
    ro.collect(env, policy, starts=[starts[0], starts[0]])


def test_chunked_collection_equals_one_batch(setup):
  params, _, sampler, _ = setup
  env = EducationEnv(ScriptedStudent(), max_agent_turns=2)
  policy = ro.TurnPolicy(sampler, params, VOCAB, INPUT_LENGTH)
  contexts = _education(5, seed=4)
  whole = ro.collect(env, policy, contexts, copies=2, seed=9).conversations
  assert ro.collect_conversations(env, policy, contexts, copies=2, chunk=2, seed=9) == whole
