"""Imports flow one way between the project's layers (docs/architecture.md):

    types ← text/models ← rl ← envs ← oracles ← data ← training ← pipeline/evaluation ← main

Every import of every module (top-level or inside a function) is read from the source with `ast`; a module may
import its own layer or a lower one, never a higher one, and the package graph has no cycle."""

import os

import pytest

from import_scan import scan

# Lowest first. A name is a top-level module or package of mtpo_jax.
LAYERS = (
    ("types", "distributed", "openai_client", "tabular", "atomic_files", "cli_errors", "config_types", "run_config"),
    ("text", "models", "partitioning", "checkpoints", "testing"),
    ("rl",),
    ("envs",),
    ("oracles",),
    ("data",),
    ("training",),
    ("pipeline", "evaluation", "aot", "gin_registry", "launch"),
    ("main", "data_cli", "inspect_cli"),
)
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules():
  """(dotted module below mtpo_jax, its path relative to mtpo_jax/) of every module."""
  for rel in sorted(scan()):
    yield rel[:-3].replace(os.sep, ".").removesuffix(".__init__").removesuffix("__init__"), rel


def _imports(rel: str):
  """The mtpo_jax names a module imports (top-level or inside functions), dotted below mtpo_jax."""
  return [name.split(".", 1)[1] for name in scan()[rel]["all"] if name.startswith("mtpo_jax.")]


def package_graph() -> dict[str, set[str]]:
  graph: dict[str, set[str]] = {}
  for module, rel in _modules():
    top = module.split(".")[0]
    if not top:
      continue
    graph.setdefault(top, set()).update(i.split(".")[0] for i in _imports(rel) if i.split(".")[0] != top)
  return graph


def test_every_module_has_a_layer():
  unplaced = sorted({m.split(".")[0] for m, _ in _modules() if m} - set(RANK))
  assert not unplaced, f"add these to LAYERS: {unplaced}"


@pytest.mark.parametrize("module,rel", [m for m in _modules() if m[0]], ids=lambda x: x if "/" not in x else "")
def test_no_module_imports_a_higher_layer(module, rel):
  here = RANK[module.split(".")[0]]
  upward = sorted(i for i in set(_imports(rel)) if RANK[i.split(".")[0]] > here)
  assert not upward, f"mtpo_jax.{module} (layer {here}) imports higher layers: {upward}"


def test_package_graph_has_no_cycle():
  graph, done, path = package_graph(), set(), []

  def visit(node):
    assert node not in path, f"import cycle: {' -> '.join(path + [node])}"
    if node in done:
      return
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      visit(nxt)
    path.pop()
    done.add(node)

  for node in sorted(graph):
    visit(node)


def test_the_scan_sees_function_level_and_package_imports():
  """The forms that broke the order before: an import inside a function, `from mtpo_jax import x`."""
  assert "oracles.rubric" in _imports(os.path.join("evaluation", "evaluate.py"))  # imported inside a function
  assert "gin_registry" in _imports("main.py")  # from mtpo_jax import gin_registry
