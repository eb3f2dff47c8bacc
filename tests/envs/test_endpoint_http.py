"""The endpoint client, judge and student against a real HTTP server on 127.0.0.1 (scripted replies per request).

Every server here is started by the test on an ephemeral port and stops with it; sleeping handlers wake up at
teardown, so nothing outlives the test.
"""

import http.server
import json
import math
import threading
import time

import numpy as np
import pytest

from mtpo_jax.envs.endpoint_student import EmptyReplyError, EndpointStudent, clean_reply
from mtpo_jax.envs.negotiation import NegotiationEnv, buyer_system_prompt, sale_price, sample_contexts
from mtpo_jax.openai_client import (ChatClient, ChatConfig, ChatConnectionError, ChatHTTPError, ChatTimeoutError,
                                    MalformedReplyError)
from mtpo_jax.oracles.endpoint import EndpointJudge, MalformedJudgementError, logprob_choice, parse_choice
from mtpo_jax.types import END_OF_CONVERSATION, Context, Conversation, Turn


# SCRIPTED SERVER

def completion(text, logprobs=None):
  choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
  if logprobs is not None:
    choice["logprobs"] = logprobs
  return {"id": "x", "object": "chat.completion", "choices": [choice]}


def ok(text, logprobs=None):
  return {"status": 200, "json": completion(text, logprobs)}


class ScriptedServer:
  """Answers POSTs with `script` actions in order, then with `default(request_json)`; records every request.

  An action is a dict: status, and json (an object) or raw (bytes); optional headers and sleep (seconds before
  answering).
  """

  def __init__(self, script=(), default=None):
    self.script, self.default = list(script), default
    self.requests, self.lock, self.stop = [], threading.Lock(), threading.Event()
    self.inflight = self.max_inflight = 0
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
          server.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
          action = server.script.pop(0) if server.script else server.default(body)
          server.inflight += 1
          server.max_inflight = max(server.max_inflight, server.inflight)
        try:
          if action.get("sleep"):
            server.stop.wait(action["sleep"])
          payload = action["raw"] if "raw" in action else json.dumps(action["json"]).encode()
          self.send_response(action["status"])
          for k, v in action.get("headers", {}).items():
            self.send_header(k, v)
          self.send_header("Content-Length", str(len(payload)))
          self.end_headers()
          self.wfile.write(payload)
        except OSError:
          pass  # the client gave up (timeout) and closed the socket
        finally:
          with server.lock:
            server.inflight -= 1

      def log_message(self, *args):
        pass

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

  def __enter__(self):
    threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return self

  def __exit__(self, *exc):
    self.stop.set()
    self.httpd.shutdown()
    self.httpd.server_close()


def make_client(url, **kw):
  cfg = dict(base_url=url, model="test-model", timeout_s=2.0, max_retries=3, backoff_s=0.01, max_backoff_s=0.05)
  cfg.update(kw)
  return ChatClient(ChatConfig(**cfg))


# CLIENT

def test_success_sends_the_openai_body_and_key(monkeypatch):
  monkeypatch.setenv("MTPO_TEST_KEY", "sk-test")
  with ScriptedServer([ok("hello")]) as srv:
    client = make_client(srv.url, api_key_env="MTPO_TEST_KEY", temperature=0.7, max_tokens=17)
    reply = client.complete([{"role": "user", "content": "hi"}], stop=["\n"])
  assert reply.text == "hello" and reply.finish_reason == "stop"
  req = srv.requests[0]
  assert req["path"] == "/v1/chat/completions"
  assert req["headers"]["Authorization"] == "Bearer sk-test"
  assert req["json"] == {"model": "test-model", "messages": [{"role": "user", "content": "hi"}],
                         "temperature": 0.7, "max_tokens": 17, "stop": ["\n"]}
  assert client.stats() == {"calls": 1, "requests": 1, "retries": 0, "successes": 1, "failures": 0,
                            "timeouts": 0, "connection_errors": 0, "http_errors": 0, "malformed": 0}


def test_timeouts_are_retried_then_raise_a_clear_error():
  with ScriptedServer(default=lambda body: {**ok("late"), "sleep": 2.0}) as srv:
    client = make_client(srv.url, timeout_s=0.2, max_retries=2)
    start = time.monotonic()
    with pytest.raises(ChatTimeoutError, match=r"127\.0\.0\.1.*3 attempt\(s\).*timed out"):
      client.complete([{"role": "user", "content": "hi"}])
    assert time.monotonic() - start < 1.5
  s = client.stats()
  assert (s["requests"], s["timeouts"], s["retries"], s["failures"]) == (3, 3, 2, 1)


def test_server_errors_are_retried_until_success():
  script = [{"status": 500, "raw": b"boom"}, {"status": 503, "raw": b"busy"}, ok("fine")]
  with ScriptedServer(script) as srv:
    client = make_client(srv.url)
    assert client.complete([{"role": "user", "content": "hi"}]).text == "fine"
  s = client.stats()
  assert (s["requests"], s["retries"], s["http_errors"], s["successes"], s["failures"]) == (3, 2, 2, 1, 0)


def test_backoff_is_exponential_with_jitter_and_honours_retry_after():
  delays = []
  script = [{"status": 429, "raw": b"slow down", "headers": {"Retry-After": "0.3"}},
            {"status": 429, "raw": b"slow down"}, {"status": 502, "raw": b""}, {"status": 500, "raw": b""},
            ok("done")]
  with ScriptedServer(script) as srv:
    client = ChatClient(ChatConfig(srv.url, "m", backoff_s=0.1, max_backoff_s=1.0, max_retries=4),
                        sleep=delays.append)
    assert client.complete([{"role": "user", "content": "hi"}]).text == "done"
  assert delays[0] == 0.3  # Retry-After
  for k, d in enumerate(delays[1:], start=1):  # uniform in [0.5, 1] * 0.1 * 2**k
    assert 0.5 * 0.1 * 2 ** k <= d <= 0.1 * 2 ** k
  assert client.stats()["retries"] == 4


def test_retries_exhausted_on_5xx_raise_with_status_and_body():
  with ScriptedServer(default=lambda body: {"status": 500, "raw": b"internal kaboom"}) as srv:
    client = make_client(srv.url, max_retries=1)
    with pytest.raises(ChatHTTPError, match="HTTP 500.*internal kaboom") as info:
      client.complete([{"role": "user", "content": "hi"}])
  assert info.value.status == 500 and info.value.attempts == 2 and srv.url in str(info.value)


def test_400_is_not_retried():
  with ScriptedServer([{"status": 400, "json": {"error": {"message": "bad model"}}}, ok("never")]) as srv:
    client = make_client(srv.url)
    with pytest.raises(ChatHTTPError, match="HTTP 400.*bad model"):
      client.complete([{"role": "user", "content": "hi"}])
  assert len(srv.requests) == 1 and client.stats()["retries"] == 0


@pytest.mark.parametrize("action, needle", [
    ({"status": 200, "raw": b"{not json"}, "JSONDecodeError"),
    ({"status": 200, "json": {"object": "chat.completion"}}, "choices"),
    ({"status": 200, "json": {"choices": []}}, "IndexError"),
    ({"status": 200, "json": {"choices": [{"message": {"content": None}}]}}, "not a string"),
])
def test_malformed_replies_raise_and_are_counted(action, needle):
  with ScriptedServer([action, ok("never")]) as srv:
    client = make_client(srv.url)
    with pytest.raises(MalformedReplyError, match=needle):
      client.complete([{"role": "user", "content": "hi"}])
  assert client.stats()["malformed"] == 1 and len(srv.requests) == 1


def test_connection_refused_is_retried_then_raises():
  with ScriptedServer() as srv:
    url = srv.url
  client = make_client(url, max_retries=1)  # the server is closed now
  with pytest.raises(ChatConnectionError, match="connection error"):
    client.complete([{"role": "user", "content": "hi"}])
  assert client.stats()["connection_errors"] == 2


def test_batch_keeps_order_and_bounds_concurrency():
  echo = lambda body: {**ok(body["messages"][0]["content"].upper()), "sleep": 0.05}
  with ScriptedServer(default=echo) as srv:
    with make_client(srv.url, concurrency=3) as client:
      replies = client.complete_batch([[{"role": "user", "content": f"m{i}"}] for i in range(9)])
  assert [r.text for r in replies] == [f"M{i}" for i in range(9)]
  assert 2 <= srv.max_inflight <= 3


def test_batch_failure_names_the_item():
  def reply(body):
    bad = body["messages"][0]["content"] == "m2"
    return {"status": 400, "raw": b"nope"} if bad else ok("fine")
  with ScriptedServer(default=reply) as srv:
    with make_client(srv.url, concurrency=2) as client:
      with pytest.raises(ChatHTTPError) as info:
        client.complete_batch([[{"role": "user", "content": f"m{i}"}] for i in range(4)])
  assert "item 2 of a batch of 4" in " ".join(getattr(info.value, "__notes__", []))


# JUDGE

def conv(cid, *texts, agent_first=True):
  turns = tuple(Turn("teacher" if (i % 2 == 0) == agent_first else "student", t, (i % 2 == 0) == agent_first)
                for i, t in enumerate(texts))
  return Conversation(Context(cid, {"topic": "Photosynthesis"}, {"student_preferences": "hands-on"}), turns, True)


@pytest.mark.parametrize("text, want", [
    ("1", 1), (" 2\n", 2), ("1.", 1), ("**2**", 2), ("Interaction 1", 1), ("interaction 2.", 2),
    ("Response 1", 1), ("Output: 2", 2), ("(1)", 1), ("banana", None), ("1 or 2", None), ("12", None),
    ("Interaction 1 is better", None), ("", None), ("both", None)])
def test_parse_choice(text, want):
  assert parse_choice(text) == want


def interaction(prompt, k):
  """The text of option k in a conversation-level prompt (any case)."""
  return prompt.split(f"nteraction {k}:\n")[1].split("\n\n")[0]


def test_judge_is_antisymmetric_with_an_order_biased_server():
  # Picks the only conversation that mentions plants; otherwise (neither or both) always says "1".
  def biased(body):
    prompt = body["messages"][0]["content"].lower()
    return ok("2" if "plants" in interaction(prompt, 2) and "plants" not in interaction(prompt, 1) else "1")
  a = [conv("c0", "Let us start.", "Cool!"), conv("c1", "Let us start.", "ok"), conv("c2", "Plants!", "ok")]
  b = [conv("c0", "Read chapter two.", "fine"), conv("c1", "Plants eat light.", "wow"), conv("c2", "Plants?", "")]
  with ScriptedServer(default=biased) as srv:
    judge = EndpointJudge(make_client(srv.url))
    p_ab, p_ba = judge.preference(a, b), judge.preference(b, a)
  np.testing.assert_allclose(p_ab + p_ba, 1.0)
  np.testing.assert_allclose(p_ab, [0.5, 0.0, 0.5])  # order bias cancels to 0.5; c1: b wins in both orders
  assert len(srv.requests) == 12 and judge.stats()["judge_judgements"] == 12
  prompts = [r["json"]["messages"][0]["content"] for r in srv.requests]
  assert all("Output 1 or 2" in p and "Photosynthesis" in p for p in prompts)
  assert sum("Interaction 1:\nTeacher: Let us start.\nStudent: Cool!\n" in p for p in prompts) == 2


def test_malformed_judgement_raises_by_default():
  with ScriptedServer(default=lambda body: ok("banana")) as srv:
    judge = EndpointJudge(make_client(srv.url))
    with pytest.raises(MalformedJudgementError, match="banana"):
      judge.preference([conv("c", "x", "y")], [conv("c", "z", "w")])
  assert judge.stats()["judge_malformed"] == 2 and len(srv.requests) == 2


def test_malformed_judgement_retry_policy():
  with ScriptedServer([ok("banana"), ok("1"), ok("Interaction 1")], default=lambda body: ok("2")) as srv:
    judge = EndpointJudge(make_client(srv.url, concurrency=1), on_malformed="retry", max_reasks=2)
    p = judge.preference([conv("c", "x", "y")], [conv("c", "z", "w")])
  assert p.shape == (1,) and p[0] in (0.0, 0.5, 1.0)
  s = judge.stats()
  assert (s["judge_malformed"], s["judge_reasks"], s["judge_judgements"]) == (1, 1, 2)
  with ScriptedServer(default=lambda body: ok("I cannot decide")) as srv:
    judge = EndpointJudge(make_client(srv.url), on_malformed="retry", max_reasks=2)
    with pytest.raises(MalformedJudgementError, match="3 attempt"):
      judge.preference([conv("c", "x", "y")], [conv("c", "z", "w")])
  assert judge.stats()["judge_malformed"] == 6


def top(p1):
  alts = [{"token": "1", "logprob": math.log(p1)}, {"token": "2", "logprob": math.log(1 - p1)}]
  return {"content": [{"token": "1" if p1 >= 0.5 else "2", "logprob": 0.0, "top_logprobs": alts}]}


def test_logprob_probabilities_are_symmetrized():
  def soft(body):  # P(option 1) = 0.8 when the "a" conversation is first, 0.4 when it is second
    p1 = 0.8 if "alpha" in interaction(body["messages"][0]["content"], 1) else 0.4
    return ok("1" if p1 >= 0.5 else "2", top(p1))
  with ScriptedServer(default=soft) as srv:
    judge = EndpointJudge(make_client(srv.url), use_logprobs=True)
    p = judge.preference([conv("c", "alpha", "y")], [conv("c", "beta", "w")])
  np.testing.assert_allclose(p, [(0.8 + 1 - 0.4) / 2])
  assert srv.requests[0]["json"]["logprobs"] is True and judge.stats()["judge_soft"] == 2
  assert logprob_choice(None) is None and logprob_choice({"content": [{"token": "1", "top_logprobs": []}]}) is None


def test_single_turn_mode_shows_history_and_both_responses():
  base = conv("c", "Hello class.", "Hi.")
  a = base.append(Turn("teacher", "Let us grow a bean plant together.", True))
  b = base.append(Turn("teacher", "Copy the definition.", True))
  with ScriptedServer(default=lambda body: ok("1")) as srv:
    judge = EndpointJudge(make_client(srv.url), mode="single_turn")
    np.testing.assert_allclose(judge.preference([a], [b]), [0.5])
  # Both orders are asked, concurrently, so the server may see either first.
  prompts = [r["json"]["messages"][0]["content"] for r in srv.requests]
  assert len(prompts) == 2 and all("Teacher: Hello class.\nStudent: Hi." in p for p in prompts)
  assert any("Response 1:\nLet us grow a bean plant together.\n\nResponse 2:\nCopy the definition." in p for p in prompts)
  assert any("Response 1:\nCopy the definition.\n\nResponse 2:\nLet us grow a bean plant together." in p for p in prompts)
  with pytest.raises(ValueError, match="share every turn"):
    judge.preference([a], [conv("c", "Other start.", "Hi.", "x")])


# STUDENT

def education_context():
  return Context("edu-7", {"topic": "Newton's laws"},
                 {"student_prefrences": "hands-on activities and real-world examples",
                  "student_reactions": "gets frustrated and says so when the lesson is a lecture"})


def test_endpoint_student_end_to_end():
  c = Conversation(education_context()).append(Turn("teacher", "Today: Newton's laws.", True))
  c = c.append(Turn("student", "Okay.", False)).append(Turn("teacher", "F equals m a.", True))
  reply = "Student: Can we try it with a toy car?\nTeacher: Sure, let us do that."
  with ScriptedServer([ok(reply), ok("**Student:** Bye! [End of Conversation]")]) as srv:
    student = EndpointStudent(make_client(srv.url, concurrency=1), max_tokens=64)
    assert student.reply([c, c]) == ["Can we try it with a toy car?", f"Bye! {END_OF_CONVERSATION}"]
  messages = srv.requests[0]["json"]["messages"]
  assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
  assert [m["content"] for m in messages[1:]] == ["Today: Newton's laws.", "Okay.", "F equals m a."]
  assert "hands-on activities and real-world examples" in messages[0]["content"]
  assert "gets frustrated" in messages[0]["content"] and "Newton's laws" in messages[0]["content"]
  assert srv.requests[0]["json"]["max_tokens"] == 64


def test_endpoint_student_failures_raise():
  c = Conversation(education_context()).append(Turn("teacher", "Hi.", True))
  with ScriptedServer(default=lambda body: {"status": 503, "raw": b"overloaded"}) as srv:
    student = EndpointStudent(make_client(srv.url, max_retries=1))
    with pytest.raises(ChatHTTPError, match="503"):
      student.reply([c])
  with ScriptedServer(default=lambda body: ok("Student:   ")) as srv:
    with pytest.raises(EmptyReplyError):
      EndpointStudent(make_client(srv.url)).reply([c])
  with pytest.raises(ValueError, match="last turn"):
    student.reply([c.append(Turn("student", "Hello.", False))])
  with pytest.raises(KeyError, match="student preference"):
    student.messages(Conversation(Context("x", {"topic": "t"}, {})).append(Turn("teacher", "Hi.", True)))


def test_endpoint_buyer_in_the_negotiation_env():
  ctx = sample_contexts(1, seed=0)[0]
  with ScriptedServer([ok("Buyer: Could you do $20,000?\nSeller: maybe"), ok("Deal! $21,000 it is.")]) as srv:
    env = NegotiationEnv(EndpointStudent(make_client(srv.url), system_prompt=buyer_system_prompt, own_name="Buyer",
                                         other_name="Seller"))
    convs, done = env.step(env.reset([ctx]), ["Hi! It's $23,000."])
    assert convs[0].turns[-1].text == "Could you do $20,000?" and not done[0]
    convs, done = env.step(convs, ["How about $21,000?"])
  assert done[0] and sale_price(convs[0]) == 21000.0
  system = srv.requests[0]["json"]["messages"][0]["content"]
  assert f"{ctx.hidden['budget']:,}" in system and ctx.hidden["personality"] in system
  assert [m["role"] for m in srv.requests[1]["json"]["messages"]] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize("raw, want", [
    ("Student: Hi", "Hi"), ("student : Hi", "Hi"), ("Assistant: Student: Hi", "Hi"), ("Hi there", "Hi there"),
    ("Hi\nTeacher: more", "Hi"), ("I'm done. [end of conversation]", "I'm done. [end of conversation]"),
    ("A student: is not a prefix", "A student: is not a prefix")])
def test_clean_reply(raw, want):
  assert clean_reply(raw) == want
