"""Every module's imports, read once from source by `ast` in a fresh subprocess and shared by the import tests.

Parsing ~200 files inside the test process is slow once earlier tests have filled the heap (the garbage collector
must pause around each `ast.parse`: CPython 3.11 raises "AST constructor recursion depth mismatch" when a
finaliser runs inside the AST constructor); a fresh interpreter parses them all in about a second."""

import functools
import json
import os
import subprocess
import sys

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mtpo_jax")

_SCAN = r"""
import ast, glob, json, os, sys
pkg = sys.argv[1]
out = {}
for path in sorted(glob.glob(os.path.join(pkg, "**", "*.py"), recursive=True)):
  tree = ast.parse(open(path).read(), path)
  def names(node):
    if isinstance(node, ast.Import):
      return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      if node.module == "mtpo_jax":
        return [f"mtpo_jax.{a.name}" for a in node.names]
      return [node.module]
    return []
  out[os.path.relpath(path, pkg)] = {"top": [n for node in tree.body for n in names(node)],
                                      "all": [n for node in ast.walk(tree) for n in names(node)]}
print(json.dumps(out))
"""


@functools.lru_cache(maxsize=1)
def scan() -> dict[str, dict[str, list[str]]]:
  """{path relative to mtpo_jax/: {"top": module-level imports, "all": every import, function-level too}};
  `from mtpo_jax import x` is reported as mtpo_jax.x."""
  out = subprocess.run([sys.executable, "-c", _SCAN, PKG], capture_output=True, text=True, timeout=300)
  if out.returncode:
    raise RuntimeError(out.stderr)
  return json.loads(out.stdout)
