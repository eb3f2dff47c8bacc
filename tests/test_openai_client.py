"""The endpoint client's bounds against misbehaving servers on 127.0.0.1 (raw sockets, so a test can trickle, hang
or drop a connection mid-body): the whole-attempt deadline, the retry budget, the response-size cap, Retry-After
on 5xx, and one clear error each. Well-behaved replies and the judge/student on top: tests/envs/test_endpoint_http.py.
"""

import json
import socket
import threading
import time

import pytest

from mtpo_jax.openai_client import ChatClient, ChatConfig, ChatError, ChatHTTPError, ChatTimeoutError

GOOD = json.dumps({"choices": [{"message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}]})


class RawServer:
  """Accepts connections on 127.0.0.1; `behave(conn, n)` answers the n-th one (0-based) however it likes."""

  def __init__(self, behave):
    self.behave, self.stop, self.count = behave, threading.Event(), 0
    self.sock = socket.socket()
    self.sock.bind(("127.0.0.1", 0))
    self.sock.listen(8)
    self.sock.settimeout(0.1)
    self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
    self.thread = threading.Thread(target=self._serve, daemon=True)

  def _serve(self):
    while not self.stop.is_set():
      try:
        conn, _ = self.sock.accept()
      except OSError:
        continue
      n, self.count = self.count, self.count + 1
      threading.Thread(target=self._answer, args=(conn, n), daemon=True).start()

  def _answer(self, conn, n):
    try:
      _read_request(conn)
      self.behave(conn, n, self.stop)
    except OSError:
      pass  # the client cut the connection
    finally:
      conn.close()

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.stop.set()
    self.thread.join(5)
    self.sock.close()


def _read_request(conn):
  data = b""
  while b"\r\n\r\n" not in data:
    data += conn.recv(65536)
  head, _, body = data.partition(b"\r\n\r\n")
  length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
  while len(body) < length:
    body += conn.recv(65536)


def _headers(status, length, extra=""):
  return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


def _client(url, **kw):
  config = dict(base_url=url, model="m", timeout_s=2.0, deadline_s=1.0, max_retries=0, backoff_s=0.01)
  config.update(kw)
  return ChatClient(ChatConfig(**config))


def test_a_trickling_server_is_cut_off_at_the_deadline():
  """One byte every 0.3 s never trips the 2 s per-read timeout; the 1 s deadline for the whole answer does."""
  def trickle(conn, n, stop):
    conn.sendall(_headers("200 OK", len(GOOD)))
    for byte in GOOD.encode():
      if stop.wait(0.3):
        return
      conn.sendall(bytes([byte]))
  with RawServer(trickle) as server:
    t0 = time.time()
    with pytest.raises(ChatTimeoutError, match="no complete answer within deadline_s = 1 s"):
      _client(server.url).complete([{"role": "user", "content": "hi"}])
    assert time.time() - t0 < 1.9


def test_a_server_that_hangs_after_the_headers_is_cut_off():
  def hang(conn, n, stop):
    conn.sendall(_headers("200 OK", len(GOOD)) + GOOD.encode()[:10])
    stop.wait(30)
  with RawServer(hang) as server, pytest.raises(ChatTimeoutError, match="deadline_s"):
    _client(server.url, timeout_s=30.0).complete([{"role": "user", "content": "hi"}])


def test_a_connection_dropped_mid_body_is_retried_then_succeeds():
  def drop_once(conn, n, stop):
    if n == 0:
      conn.sendall(_headers("200 OK", len(GOOD)) + GOOD.encode()[:10])
      return  # closes the connection with the body unfinished
    conn.sendall(_headers("200 OK", len(GOOD)) + GOOD.encode())
  with RawServer(drop_once) as server:
    client = _client(server.url, max_retries=1)
    assert client.complete([{"role": "user", "content": "hi"}]).text == "fine"
    assert client.stats()["connection_errors"] == 1 and client.stats()["retries"] == 1


@pytest.mark.parametrize("declare", [True, False], ids=["content_length", "streamed"])
def test_an_oversized_body_is_refused(declare):
  big = b"x" * 5000
  def oversized(conn, n, stop):
    head = _headers("200 OK", len(big)) if declare else b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    conn.sendall(head + big)
  with RawServer(oversized) as server:
    client = _client(server.url, max_response_bytes=1000, max_retries=2)
    with pytest.raises(ChatError, match="over max_response_bytes = 1000"):
      client.complete([{"role": "user", "content": "hi"}])
    assert server.count == 1  # not retried: the next answer would be as big


def test_a_500_with_retry_after_is_honoured():
  waits = []
  def busy_once(conn, n, stop):
    if n == 0:
      body = b'{"error": "busy"}'
      conn.sendall(_headers("503 Service Unavailable", len(body), "Retry-After: 7\r\n") + body)
      return
    conn.sendall(_headers("200 OK", len(GOOD)) + GOOD.encode())
  with RawServer(busy_once) as server:
    client = ChatClient(ChatConfig(base_url=server.url, model="m", max_retries=1, deadline_s=5.0),
                        sleep=waits.append)
    assert client.complete([{"role": "user", "content": "hi"}]).text == "fine"
  assert waits == [7.0]


def test_the_retry_budget_stops_retrying():
  def always_500(conn, n, stop):
    body = b'{"error": "down"}'
    conn.sendall(_headers("500 Internal Server Error", len(body), "Retry-After: 5\r\n") + body)
  with RawServer(always_500) as server:
    client = ChatClient(ChatConfig(base_url=server.url, model="m", max_retries=10, retry_budget_s=12.0),
                        sleep=lambda s: None)
    with pytest.raises(ChatHTTPError, match="HTTP 500") as info:
      client.complete([{"role": "user", "content": "hi"}])
    assert any("retry budget of 12 s" in note for note in info.value.__notes__)
    assert server.count < 11  # the budget, not max_retries, ended it


def test_non_json_is_a_malformed_reply_naming_the_body():
  def not_json(conn, n, stop):
    body = b"<html>gateway</html>"
    conn.sendall(_headers("200 OK", len(body)) + body)
  with RawServer(not_json) as server, pytest.raises(ChatError, match="malformed reply .*gateway"):
    _client(server.url).complete([{"role": "user", "content": "hi"}])


def test_direct_calls_from_many_threads_respect_the_concurrency_limit():
  inflight, peak, lock = [0], [0], threading.Lock()
  def slow(conn, n, stop):
    with lock:
      inflight[0] += 1
      peak[0] = max(peak[0], inflight[0])
    stop.wait(0.2)
    with lock:
      inflight[0] -= 1
    conn.sendall(_headers("200 OK", len(GOOD)) + GOOD.encode())
  with RawServer(slow) as server:
    client = _client(server.url, concurrency=2, deadline_s=10.0)
    threads = [threading.Thread(target=client.complete, args=([{"role": "user", "content": str(i)}],))
               for i in range(6)]
    for t in threads:
      t.start()
    for t in threads:
      t.join(30)
    assert client.stats()["successes"] == 6 and peak[0] == 2
