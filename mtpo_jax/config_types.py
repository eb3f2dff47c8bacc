"""Type checks for Gin bindings: a wrong type names the binding, not a line deep inside the library.

Gin passes whatever a file or `--gin.X.y=...` says. Without a check, `LoopSettings.num_steps = 'ten'` surfaces as
"'<' not supported between instances of 'str' and 'int'" and `T5Config.d_model = 6.5` as a Flax shape error many
frames later. `checked(target, name)` wraps a configurable so that every argument Gin binds is checked against
the target's type hints first, raising one TypeError that names the binding (`scope/Name.param`), the value and
the expected type. gin_registry.py wraps everything it registers; library code calling the functions directly is
not affected.

What is checked: int (not bool), float (int accepted), bool, str, None, unions (`X | None`), Literal, tuples,
lists and Sequences (a tuple or a list, element by element), dicts, Callable, and this project's own classes
(isinstance). Hints that cannot be resolved, `Any`, and third-party types (array dtypes, optax objects) are
accepted as they are: the check may let a wrong value through, but never refuses a right one.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import numbers
import types
import typing
from typing import Any, Callable

import gin
import numpy as np


def describe(hint: Any) -> str:
  """A readable name for a type hint: `int`, `str | None`, `tuple[int, ...]`."""
  if hint is type(None):
    return "None"
  if isinstance(hint, type) and not typing.get_args(hint):
    return hint.__name__
  return str(hint).replace("typing.", "")


def matches(value: Any, hint: Any) -> bool:
  """Whether `value` fits the type hint `hint` (module docstring: what is checked)."""
  if hint is Any or isinstance(hint, (typing.TypeVar, str)) or value is gin.REQUIRED:
    return True
  if hint is type(None) or hint is None:
    return value is None
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    return any(matches(value, a) for a in args)
  if origin is typing.Literal:
    return value in args
  if hint is bool:
    return isinstance(value, (bool, np.bool_))
  if hint is int:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
  if hint is float:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
  if hint is str:
    return isinstance(value, str)
  if origin in (tuple, list, collections.abc.Sequence) or hint in (tuple, list):
    if not isinstance(value, (tuple, list)):
      return False
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
      return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
    return not args or all(matches(v, args[0]) for v in value)
  if origin in (dict, collections.abc.Mapping) or hint is dict:
    if not isinstance(value, collections.abc.Mapping):
      return False
    return not args or all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
  if origin is collections.abc.Callable or hint is collections.abc.Callable:
    return callable(value)
  if isinstance(hint, type) and hint.__module__.split(".")[0] == "mtpo_jax":
    if getattr(hint, "_is_protocol", False):  # a Protocol (e.g. Judge): structural, not checked here
      return True
    return isinstance(value, hint)
  return True  # a third-party type: not ours to judge


def _hints(target: Any) -> dict[str, Any]:
  try:
    return typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
  except Exception:  # an unresolvable forward reference: no checks rather than false refusals
    return {}


def check_arguments(name: str, target: Any, args: tuple, kwargs: dict[str, Any]) -> None:
  """TypeError naming `name.param`, the value and the expected type for the first argument that does not fit."""
  hints = _hints(target)
  try:
    bound = inspect.signature(target).bind_partial(*args, **kwargs).arguments
  except TypeError:
    return  # the call itself is malformed: let Python's own message through
  scope = gin.current_scope_str()
  where = f"{scope}/{name}" if scope else name
  for param, value in bound.items():
    hint = hints.get(param)
    if hint is not None and not matches(value, hint):
      raise TypeError(f"{where}.{param} = {value!r}: expected {describe(hint)}, got {type(value).__name__}")


def checked(target: Callable[..., Any], name: str) -> Callable[..., Any]:
  """`target` (a function or a class) wrapped so that each call first runs `check_arguments`. The wrapper keeps
  the target's signature, so Gin still refuses unknown parameter names when it parses."""
  @functools.wraps(target)
  def call(*args, **kwargs):
    check_arguments(name, target, args, kwargs)
    return target(*args, **kwargs)
  return call
