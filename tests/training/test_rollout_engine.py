"""Rollouts keep exactly what the policy saw and sampled; copies share contexts; order does not matter."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtpo_jax.data.vocabulary import DEFAULT_SPM_PATH, Vocabulary
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import Sampler, SamplingConfig
from mtpo_jax.models.t5 import T5, shift_right
from mtpo_jax.rl.kl import token_logprobs
from mtpo_jax.training import rollout_engine as re


@pytest.fixture(scope="module")
def setup():
  vocab = Vocabulary(DEFAULT_SPM_PATH)
  config = T5Config(vocab_size=3072, d_model=32, d_kv=8, d_ff=64, num_heads=4)
  model = T5(config)
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32),
                                        jnp.ones((1, 4), jnp.int32))["params"])
  params["logits_dense"] = params["logits_dense"].at[:, 1].add(0.3)  # shorter turns
  sampler = Sampler(model, SamplingConfig(max_new_tokens=16))
  contexts = [record_to_conversation(r, f"ctx{i}").context for i, r in enumerate(generator.generate(3, 1, "eval"))]
  return vocab, model, params, sampler, contexts


def test_rows_hold_what_the_policy_saw_and_sampled(setup):
  vocab, model, params, sampler, contexts = setup
  env = EducationEnv(ScriptedStudent(), max_agent_turns=3)
  b = re.collect(env, sampler, params, vocab, contexts, copies=2, input_length=128, seed=1)
  assert len(b.conversations) == 6 and b.pairs.tolist() == [[0, 1], [2, 3], [4, 5]]
  assert all(c.num_agent_turns <= 3 and c.done for c in b.conversations)
  assert b.num_rows == sum(c.num_agent_turns for c in b.conversations) == int(b.turn_mask.sum())
  for row in range(b.num_rows):
    conv = b.conversations[b.conversation[row]]
    agent_turns = [t for t in conv.turns if t.is_agent]
    text = agent_turns[b.turn[row]].text
    n = int(b.token_mask[row].sum())
    assert vocab.decode(b.decoder_ids[row, :n]).strip() == text
    history = conv.__class__(conv.context, conv.turns[:[i for i, t in enumerate(conv.turns) if t.is_agent][b.turn[row]]])
    prompt = re.education_prompt(history, 127, lambda s: len(vocab.encode(s)))
    expected = vocab.encode(prompt)[-127:] + [1]
    assert b.encoder_ids[row, :len(expected)].tolist() == expected
  # Sampling log-probs equal teacher-forced log-probs of the stored ids.
  logits = model.apply({"params": params}, jnp.asarray(b.encoder_ids), shift_right(jnp.asarray(b.decoder_ids), 0))
  tf = np.asarray(token_logprobs(logits, jnp.asarray(b.decoder_ids))) * b.token_mask
  np.testing.assert_allclose(b.logp, tf, atol=1e-4)
  # The two copies of a context differ (independent samples).
  assert b.conversations[0].turns[0].text != b.conversations[1].turns[0].text


def test_trajectories_do_not_depend_on_context_order(setup):
  vocab, _, params, sampler, contexts = setup
  env = EducationEnv(ScriptedStudent(), max_agent_turns=2)
  fwd = re.collect(env, sampler, params, vocab, contexts, copies=1, input_length=128, seed=3)
  rev = re.collect(env, sampler, params, vocab, contexts[::-1], copies=1, input_length=128, seed=3)
  assert [c.turns for c in fwd.conversations] == [c.turns for c in rev.conversations[::-1]]


def test_pad_rows_shapes(setup):
  vocab, _, params, sampler, contexts = setup
  b = re.collect(EducationEnv(ScriptedStudent(), max_agent_turns=2), sampler, params, vocab, contexts[:1], copies=2,
                 input_length=64)
  d = re.pad_rows(b, np.ones((2, b.turn_rows.shape[1])), num_rows=16, num_turns=4)
  assert d["encoder_ids"].shape == (16, 64) and d["turn_rows"].shape == (2, 4)
  assert d["row_mask"].sum() == b.num_rows and (d["turn_rows"][:, 2:] == -1).all()
  with pytest.raises(ValueError, match="buckets"):
    re.pad_rows(b, np.ones((2, 2)), num_rows=1, num_turns=4)
