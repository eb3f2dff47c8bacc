"""One-line errors for the command lines (mtpo-train, mtpo-data, mtpo-inspect, the evaluation CLI).

A failure a user can cause (a bad Gin binding, a malformed data file, a missing or corrupt checkpoint, a full
disk, an endpoint that misbehaves) prints one line on stderr, `PROG: error: Type: message`, and the command exits
1. The library's messages already name the setting, file or input and what was expected; this layer only keeps
the traceback out of the way: `--verbose` (or MTPO_VERBOSE=1) prints it above the line.

Gin decorates errors raised inside configurables with one "In call to configurable 'X'" line per frame and
parse errors with the file and line; `one_line` folds those into the line. Errors whose detail is a list
(`multiline_message = True` on the exception class: the changed bindings of a refused rerun, the log tails of
failed pipeline stages) keep their detail lines below the error line, indented.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from typing import Callable

VERBOSE_ENV = "MTPO_VERBOSE"
_GIN_CALL = re.compile(r"^In call to configurable '([^']+)'")
# Modules of the optional extras (pyproject.toml): a missing one names the extra that brings it.
EXTRA_OF_MODULE = {"seqio": "data", "tensorflow": "data", "tensorflow_datasets": "data", "tensorflow_text": "data",
                   "transformers": "hf", "torch": "hf", "libtpu": "tpu"}


def one_line(exc: BaseException) -> str:
  """`Type: message`, on one line: gin's call-chain lines become "(in configurable X)" (the innermost), other
  continuation lines are joined with " | "."""
  if isinstance(exc, SyntaxError) and exc.text:  # gin's parse errors: say where, and quote the line
    where = f"{exc.filename or 'a --gin binding'}, line {exc.lineno}"
    return f"SyntaxError: {exc.msg} ({where}: {exc.text.strip()!r})"
  lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
  calls = [m.group(1) for m in (_GIN_CALL.match(line) for line in lines) if m]
  rest = [line for line in lines if not _GIN_CALL.match(line)]
  text = " | ".join(rest) if rest else ""
  if calls and calls[0] not in text:
    text += f" (in configurable {calls[0]})"
  extra = EXTRA_OF_MODULE.get((getattr(exc, "name", None) or "").split(".")[0])
  if isinstance(exc, ModuleNotFoundError) and extra:
    text += f"; it comes with the {extra!r} extra: pip install -e '.[{extra}]'"
  return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_error(prog: str, exc: BaseException) -> str:
  """The text printed for `exc`: one line, or for a `multiline_message` error its first line and then its
  detail lines indented."""
  if getattr(exc, "multiline_message", False):
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not _GIN_CALL.match(line.strip())]
    first, *detail = lines or [""]
    return "\n".join([f"{prog}: error: {type(exc).__name__}: {first}"] + [f"    {d}" for d in detail])
  return f"{prog}: error: {one_line(exc)}"


def setup_logging() -> None:
  """INFO and above on stderr, `time LEVEL name: message`, for the command lines. A library imported by the
  training stack installs a plain WARNING-level stderr handler on the root logger first, which would hide every
  INFO line (resumed from, the memory report, jax.distributed); that handler is replaced. Handlers of other types
  (a test runner's capture handler) stay."""
  root = logging.getLogger()
  for handler in [h for h in root.handlers if type(h) is logging.StreamHandler]:
    root.removeHandler(handler)
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it reads and writes at INFO
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU backend" on every CPU run


def verbose_requested(flag: bool = False) -> bool:
  return flag or os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")


def run_command(prog: str, body: Callable[[], int | None], verbose: bool = False) -> int:
  """Runs `body`, returning its exit status (None: 0). Any exception becomes `format_error`'s text on stderr and
  status 1 (the traceback first when `verbose_requested`); Ctrl-C becomes one line and 130. SystemExit (argparse's
  usage errors, status 2) passes through."""
  verbose = verbose_requested(verbose)
  try:
    return int(body() or 0)
  except KeyboardInterrupt:
    if verbose:
      traceback.print_exc()
    print(f"{prog}: interrupted", file=sys.stderr)
    return 130
  except Exception as exc:  # every failure: the message names the input; the traceback is one flag away
    if verbose:
      traceback.print_exc()
    hint = "" if verbose else f"  [--verbose or {VERBOSE_ENV}=1 for the traceback]"
    text = format_error(prog, exc)
    first, _, detail = text.partition("\n")
    print(first + hint + ("\n" + detail if detail else ""), file=sys.stderr, flush=True)
    return 1
