"""LearnedStudent: a T5 plays the student through the same input format, batched, position-independent."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.envs.education.env import EducationEnv
from mtpo_jax.envs.learned_student import LearnedStudent
from mtpo_jax.models.decoding import SamplingConfig
from mtpo_jax.models.t5 import T5
from mtpo_jax.testing import project_vocabulary, tiny_config


def _student(vocab, greedy=False):
  config = tiny_config(vocab.vocab_size)
  model = T5(config)
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32),
                                        jnp.ones((1, 4), jnp.int32))["params"])
  return LearnedStudent(model, params, vocab, SamplingConfig(max_new_tokens=12, greedy=greedy), input_length=128)


def test_replies_do_not_depend_on_batch_position():
  vocab = project_vocabulary()
  student = _student(vocab)
  convs = [record_to_conversation(r, f"c{i}") for i, r in enumerate(generator.generate(4, 3, "eval"))]
  convs = [c.__class__(c.context, c.turns[:3], False) for c in convs]  # ends on a teacher turn
  forward = student.reply(convs)
  backward = student.reply(convs[::-1])[::-1]
  assert forward == backward and all(isinstance(t, str) for t in forward)
  assert len(set(forward)) > 1  # sampled, not a constant
  inputs = student.inputs(convs[:1])[0]
  hidden = convs[0].context.hidden
  assert hidden["student_preference"] in inputs and inputs.endswith("Student:")


def test_learned_student_drives_the_environment():
  vocab = project_vocabulary()
  env = EducationEnv(_student(vocab, greedy=True), max_agent_turns=2)
  contexts = [record_to_conversation(r, f"k{i}").context for i, r in enumerate(generator.generate(2, 5, "eval"))]
  convs = env.reset(contexts)
  convs, done = env.step(convs, ["Hello! Today we learn something new. What do you know already?"] * 2)
  assert [len(c.turns) for c in convs] == [2, 2] and not done.any()
  assert all(not c.turns[1].is_agent for c in convs)
