"""Runs the training entrypoint as N JAX processes on this machine, each with K CPU devices (one global mesh).

    python tools/launch_local.py --num_processes=2 --devices_per_process=4 -- \
        --gin_file=experiments/sft_tiny.gin --gin_file=meshes/cpu_multiprocess.gin --gin.MODEL_DIR="'runs/mp'"

Everything after `--` goes to `python -m mtpo_jax.main` unchanged; the launcher adds the bindings that
`jax.distributed.initialize` needs (`run.distributed`, `run.coordinator_address` on 127.0.0.1, `run.num_processes`,
`run.process_id`) and `run.num_cpu_devices`. The processes talk over CPU collectives (gloo), exactly as TPU hosts
or GPU hosts would over their interconnect, so the same Gin files and code paths are exercised.

Each process writes `<log_dir>/process_<i>.log`; process 0's output is also echoed here. If any process fails,
the others are stopped (they would otherwise wait forever in a collective) and the failing log's tail is
printed. The exit status is the first non-zero one, else 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Sequence


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_command(main_args: Sequence[str], process_id: int, num_processes: int, devices: int, port: int,
                    python: str = sys.executable) -> list[str]:
  """The command line of one process: the entrypoint with the distributed bindings appended."""
  return [python, "-m", "mtpo_jax.main", *main_args,
          "--gin.run.distributed=True",
          f"--gin.run.coordinator_address='127.0.0.1:{port}'",
          f"--gin.run.num_processes={num_processes}",
          f"--gin.run.process_id={process_id}",
          f"--gin.run.num_cpu_devices={devices}"]


def _echo(stream, log_path: str, echo: bool) -> None:
  with open(log_path, "w", buffering=1) as log:
    for line in iter(stream.readline, ""):
      log.write(line)
      if echo:
        sys.stdout.write(line)
        sys.stdout.flush()


def _tail(path: str, lines: int = 30) -> str:
  with open(path) as f:
    return "".join(f.readlines()[-lines:])


def launch(main_args: Sequence[str], num_processes: int, devices_per_process: int, log_dir: str,
           port: int | None = None, timeout_s: float | None = None, echo: bool = True) -> int:
  """Starts the processes, waits for all of them and returns the exit status (see the module docstring)."""
  if num_processes < 1 or devices_per_process < 1:
    raise ValueError("num_processes and devices_per_process must be >= 1")
  os.makedirs(log_dir, exist_ok=True)
  port = port or free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  env.pop("XLA_FLAGS", None)  # a forced host device count would fight run.num_cpu_devices
  procs, threads, logs = [], [], []
  for i in range(num_processes):
    logs.append(os.path.join(log_dir, f"process_{i}.log"))
    p = subprocess.Popen(process_command(main_args, i, num_processes, devices_per_process, port), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t = threading.Thread(target=_echo, args=(p.stdout, logs[-1], echo and i == 0), daemon=True)
    t.start()
    procs.append(p)
    threads.append(t)
  start, status, failed = time.time(), 0, None
  try:
    while any(p.poll() is None for p in procs):
      for i, p in enumerate(procs):
        if p.poll() not in (None, 0) and failed is None:
          failed, status = i, p.returncode
      if failed is not None:
        break
      if timeout_s is not None and time.time() - start > timeout_s:
        failed, status = -1, 124
        break
      time.sleep(0.2)
    else:
      for i, p in enumerate(procs):
        if p.returncode and failed is None:
          failed, status = i, p.returncode
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
      try:
        p.wait(timeout=20)
      except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    for t in threads:
      t.join(timeout=5)
  if failed == -1:
    print(f"launch_local: timed out after {timeout_s:.0f} s; stopped all {num_processes} processes", file=sys.stderr)
  elif failed is not None:
    print(f"launch_local: process {failed} exited with status {status}; stopped the others. Tail of "
          f"{logs[failed]}:\n{_tail(logs[failed])}", file=sys.stderr)
  return status


def layout_parser(argv: Sequence[str], description: str) -> tuple[argparse.ArgumentParser, list[str], list[str]]:
  """(a parser with --num_processes and --devices_per_process, the options before `--`, the entrypoint's
  arguments after it); SystemExit with a usage line when `--` is missing."""
  argv = list(argv)
  if "--" not in argv:
    sys.exit(f"usage: {os.path.basename(sys.argv[0])} [options] -- <mtpo_jax.main arguments>")
  split = argv.index("--")
  parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument("--devices_per_process", type=int, default=4, help="CPU devices (XLA host devices) each")
  return parser, argv[:split], argv[split + 1:]


def main(argv: Sequence[str] | None = None) -> int:
  parser, own, main_args = layout_parser(sys.argv[1:] if argv is None else argv, __doc__)
  parser.add_argument("--log_dir", default=None, help="default: <MODEL_DIR>/process_logs, else ./process_logs")
  parser.add_argument("--port", type=int, default=None, help="coordinator port on 127.0.0.1 (default: a free one)")
  parser.add_argument("--timeout_s", type=float, default=None)
  args = parser.parse_args(own)
  log_dir = args.log_dir
  if log_dir is None:
    model_dir = next((a.split("=", 1)[1].strip("'\"") for a in main_args if a.startswith("--gin.MODEL_DIR=")), None)
    log_dir = os.path.join(model_dir, "process_logs") if model_dir else "process_logs"
  return launch(main_args, args.num_processes, args.devices_per_process, log_dir, args.port, args.timeout_s)


if __name__ == "__main__":
  sys.exit(main())
