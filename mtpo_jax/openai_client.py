"""A small client for OpenAI-compatible chat-completions endpoints (OpenAI, vLLM, llama.cpp, TGI, ...).

    client = ChatClient(ChatConfig(base_url="http://127.0.0.1:8000/v1", model="google/flan-t5-xl"))
    reply = client.complete([{"role": "user", "content": "Output 1 or 2."}])
    replies = client.complete_batch([messages_1, messages_2, ...])   # a bounded thread pool

Each request is `POST {base_url}/chat/completions` with a JSON body `{"model", "messages", "temperature",
"max_tokens", ...}`. Timeouts, connection errors, HTTP 429 and 5xx are retried with exponential backoff and
jitter (a 429's or 5xx's `Retry-After` is honoured, capped); any other status is raised at once. Every failure
raises a `ChatError` naming the URL, the status and an excerpt of the body: nothing is turned into an empty reply.

Bounds, so a slow or hostile server cannot stall a rollout: each attempt must deliver its whole answer within
`deadline_s` (a watchdog closes the socket, so a server that trickles a byte at a time or hangs mid-body is cut
off, not only one that stays silent for `timeout_s`); a request's attempts and backoff sleeps together stop
after `retry_budget_s`; a body larger than `max_response_bytes` is refused; at most `concurrency` requests are
in flight. Standard library only (http.client, so proxy environment variables are not consulted).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import http.client
import json
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable, Mapping, Sequence

Messages = Sequence[Mapping[str, str]]
_EXCERPT = 300
_COUNTERS = ("calls", "requests", "retries", "successes", "failures", "timeouts", "connection_errors",
             "http_errors", "malformed")


class ChatError(RuntimeError):
  """A chat request that failed for good. `status` and `body` are set when the server answered."""

  def __init__(self, what: str, *, url: str, status: int | None = None, body: str | None = None,
               attempts: int = 1):
    excerpt = "" if body is None else f"; body: {body[:_EXCERPT]!r}"
    code = "" if status is None else f" HTTP {status}:"
    super().__init__(f"POST {url} failed after {attempts} attempt(s):{code} {what}{excerpt}")
    self.url, self.status, self.body, self.attempts = url, status, body, attempts


class ChatHTTPError(ChatError):
  """The server answered with a non-2xx status (not retryable, or still failing after the retries)."""


class ChatTimeoutError(ChatError):
  """No answer within `timeout_s` (after the retries)."""


class ChatConnectionError(ChatError):
  """Could not connect, or the connection broke (after the retries)."""


class MalformedReplyError(ChatError):
  """A 2xx answer that is not JSON or has no `choices[0].message.content` string."""


@dataclasses.dataclass(frozen=True)
class ChatConfig:
  """Where and how to ask. The key is `api_key`, else the environment variable named by `api_key_env`, else none.

  `timeout_s` bounds each socket operation (connect, and each read); `deadline_s` bounds a whole attempt (connect,
  send, headers and body). A request is tried up to `1 + max_retries` times, and not past `retry_budget_s` from
  its start; the wait before retry k (0-based) is uniform in [0.5, 1] * min(max_backoff_s, backoff_s * 2**k), or
  the server's Retry-After (capped at max_backoff_s). A body over `max_response_bytes` is an error.
  """
  base_url: str
  model: str
  api_key: str | None = None
  api_key_env: str | None = None
  timeout_s: float = 60.0
  deadline_s: float = 120.0
  retry_budget_s: float = 600.0
  max_response_bytes: int = 8 << 20
  max_retries: int = 4
  backoff_s: float = 0.5
  max_backoff_s: float = 30.0
  concurrency: int = 8
  temperature: float = 0.0
  max_tokens: int = 256
  extra_body: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  extra_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ChatReply:
  """The first choice of a completion; `logprobs` is the choice's raw `logprobs` object when the server sent one."""
  text: str
  finish_reason: str | None
  logprobs: Mapping[str, Any] | None
  raw: Mapping[str, Any]


class _Retryable(Exception):
  """Internal: one attempt failed in a way worth retrying; carries the error to raise if it is the last."""

  def __init__(self, error: ChatError, counter: str, retry_after: float | None = None):
    super().__init__(str(error))
    self.error, self.counter, self.retry_after = error, counter, retry_after


class ChatClient:
  """Thread-safe chat-completions client with retries, a bounded thread pool and counters (`stats()`)."""

  def __init__(self, config: ChatConfig, *, sleep: Callable[[float], None] = time.sleep):
    if (config.concurrency < 1 or config.max_retries < 0 or config.timeout_s <= 0 or config.deadline_s <= 0
        or config.retry_budget_s <= 0 or config.max_response_bytes < 1):
      raise ValueError(f"bad ChatConfig (need concurrency >= 1, max_retries >= 0, positive timeout_s, deadline_s, "
                       f"retry_budget_s and max_response_bytes): {config}")
    self.config = config
    self.url = config.base_url.rstrip("/") + "/chat/completions"
    parts = urllib.parse.urlsplit(self.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
      raise ValueError(f"base_url must be http(s)://host[:port]/path, got {config.base_url!r}")
    self._parts = parts
    self._api_key = config.api_key or (os.environ.get(config.api_key_env) if config.api_key_env else None)
    self._sleep = sleep
    self._jitter = random.Random()
    self._lock = threading.Lock()
    self._counts = dict.fromkeys(_COUNTERS, 0)
    self._pool: concurrent.futures.ThreadPoolExecutor | None = None
    self._slots = threading.BoundedSemaphore(config.concurrency)

  # PUBLIC API

  def complete(self, messages: Messages, **overrides: Any) -> ChatReply:
    """One completion. `overrides` replace body fields (temperature, max_tokens, logprobs, stop, ...)."""
    self._count("calls")
    body = {"model": self.config.model, "messages": [dict(m) for m in messages],
            "temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
            **self.config.extra_body, **overrides}
    try:
      with self._slots:  # at most `concurrency` requests in flight, whichever threads call
        return self._with_retries(json.dumps(body).encode("utf-8"))
    except ChatError:
      self._count("failures")
      raise

  def complete_batch(self, batch: Sequence[Messages], **overrides: Any) -> list[ChatReply]:
    """Completions for many message lists, at most `concurrency` in flight; results in input order.

    The first failure (in input order) is raised with a note naming its index; requests not yet started are
    cancelled.
    """
    if not batch:
      return []
    if len(batch) == 1:
      return [self.complete(batch[0], **overrides)]
    pool = self._executor()
    futures = [pool.submit(self.complete, m, **overrides) for m in batch]
    out = []
    for i, future in enumerate(futures):
      try:
        out.append(future.result())
      except ChatError as e:
        for f in futures[i + 1:]:
          f.cancel()
        e.add_note(f"while completing item {i} of a batch of {len(batch)}")
        raise
    return out

  def stats(self) -> dict[str, int]:
    """Counters: calls, requests (HTTP attempts), retries, successes, failures, timeouts, connection_errors,
    http_errors (non-2xx answers), malformed (unusable 2xx answers)."""
    with self._lock:
      return dict(self._counts)

  def close(self) -> None:
    if self._pool is not None:
      self._pool.shutdown(wait=True, cancel_futures=True)
      self._pool = None

  def __enter__(self) -> "ChatClient":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # INTERNALS

  def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
    with self._lock:
      if self._pool is None:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="chat")
      return self._pool

  def _count(self, name: str, n: int = 1) -> None:
    with self._lock:
      self._counts[name] += n

  def _backoff(self, attempt: int, retry_after: float | None) -> float:
    cap = self.config.max_backoff_s
    if retry_after is not None:
      return min(cap, max(0.0, retry_after))
    with self._lock:
      u = self._jitter.uniform(0.5, 1.0)
    return u * min(cap, self.config.backoff_s * 2 ** attempt)

  def _with_retries(self, payload: bytes) -> ChatReply:
    attempts, start = 1 + self.config.max_retries, time.monotonic()
    waited = slept = 0.0  # backoff asked for, and the wall time the sleep function really took
    for attempt in range(attempts):
      try:
        status, headers, body = self._post(payload, attempt + 1)
        return self._parse(status, headers, body, attempt + 1)
      except _Retryable as r:
        self._count(r.counter)
        if attempt + 1 == attempts:
          raise r.error from None
        wait = self._backoff(attempt, r.retry_after)
        spent = time.monotonic() - start - slept + waited
        if spent + wait > self.config.retry_budget_s:
          r.error.add_note(f"retry budget of {self.config.retry_budget_s:g} s spent after {attempt + 1} attempt(s)")
          raise r.error from None
        self._count("retries")
        t0 = time.monotonic()
        self._sleep(wait)
        slept, waited = slept + time.monotonic() - t0, waited + wait
    raise AssertionError("unreachable")

  def _post(self, payload: bytes, attempt: int) -> tuple[int, Mapping[str, str], bytes]:
    """One HTTP attempt. Raises _Retryable for timeouts and connection errors."""
    p = self._parts
    conn_cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
    kwargs = {"context": ssl.create_default_context()} if p.scheme == "https" else {}
    conn = conn_cls(p.hostname, p.port, timeout=self.config.timeout_s, **kwargs)
    path = p.path + (f"?{p.query}" if p.query else "")
    headers = {"Content-Type": "application/json", "Accept": "application/json", **self.config.extra_headers}
    if self._api_key:
      headers["Authorization"] = f"Bearer {self._api_key}"
    self._count("requests")
    expired = threading.Event()

    def cut_off():  # the watchdog: a whole attempt gets deadline_s, however the server dribbles its answer
      expired.set()
      with contextlib.suppress(OSError, AttributeError):
        conn.sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(self.config.deadline_s, cut_off)
    watchdog.daemon = True
    watchdog.start()
    late = lambda: ChatTimeoutError(f"no complete answer within deadline_s = {self.config.deadline_s:g} s",
                                    url=self.url, attempts=attempt)
    try:
      conn.request("POST", path, body=payload, headers=headers)
      response = conn.getresponse()
      body = self._read_body(response, attempt)
      if expired.is_set():
        raise _Retryable(late(), "timeouts")
      return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    except (socket.timeout, TimeoutError) as e:
      err = late() if expired.is_set() else ChatTimeoutError(f"timed out after {self.config.timeout_s:g} s ({e})",
                                                            url=self.url, attempts=attempt)
      raise _Retryable(err, "timeouts") from e
    except (OSError, http.client.HTTPException) as e:
      if expired.is_set():
        raise _Retryable(late(), "timeouts") from e
      err = ChatConnectionError(f"connection error: {type(e).__name__}: {e}", url=self.url, attempts=attempt)
      raise _Retryable(err, "connection_errors") from e
    finally:
      watchdog.cancel()
      conn.close()

  def _read_body(self, response: http.client.HTTPResponse, attempt: int) -> bytes:
    """The whole body, at most max_response_bytes (ChatError beyond: not retried, the next answer would be as big);
    read as it arrives, so the watchdog's cut-off ends it."""
    limit = self.config.max_response_bytes
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
      self._count("malformed")
      raise ChatError(f"reply of {declared} bytes is over max_response_bytes = {limit}", url=self.url,
                      status=response.status, attempts=attempt)
    chunks, size = [], 0
    while True:
      chunk = response.read1(65536)
      if not chunk:
        body = b"".join(chunks)
        if declared is not None and declared.isdigit() and size != int(declared):  # dropped mid-body
          raise http.client.IncompleteRead(body, int(declared) - size)
        return body
      chunks.append(chunk)
      size += len(chunk)
      if size > limit:
        self._count("malformed")
        raise ChatError(f"reply is over max_response_bytes = {limit}", url=self.url, status=response.status,
                        attempts=attempt)

  def _parse(self, status: int, headers: Mapping[str, str], body: bytes, attempt: int) -> ChatReply:
    """Turns one HTTP answer into a reply, a _Retryable (429, 5xx) or a final ChatError."""
    text = body.decode("utf-8", errors="replace")
    if not 200 <= status < 300:
      err = ChatHTTPError("error status", url=self.url, status=status, body=text, attempts=attempt)
      if status == 429 or status >= 500:
        raise _Retryable(err, "http_errors", _retry_after(headers))
      self._count("http_errors")
      raise err
    try:
      data = json.loads(text)
      choice = data["choices"][0]
      content = choice["message"]["content"]
      if not isinstance(content, str):
        raise TypeError(f"message.content is {type(content).__name__}, not a string")
    except (ValueError, KeyError, IndexError, TypeError) as e:
      self._count("malformed")
      raise MalformedReplyError(f"malformed reply ({type(e).__name__}: {e})", url=self.url, status=status,
                                body=text, attempts=attempt) from None
    self._count("successes")
    return ChatReply(text=content, finish_reason=choice.get("finish_reason"), logprobs=choice.get("logprobs"),
                     raw=data)


def _retry_after(headers: Mapping[str, str]) -> float | None:
  """Seconds from a `Retry-After: <seconds>` header (the HTTP-date form is ignored)."""
  try:
    return float(headers["retry-after"])
  except (KeyError, ValueError):
    return None
