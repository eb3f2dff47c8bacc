"""pyproject lists every package directory (tasks/ is installed as mtpo_tasks)."""

import os
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_package_is_listed():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
  found = {"mtpo_tasks"} if os.path.exists(os.path.join(REPO, "tasks", "__init__.py")) else set()
  for root, _, files in os.walk(os.path.join(REPO, "mtpo_jax")):
    if "__init__.py" in files and "__pycache__" not in root:
      found.add(os.path.relpath(root, REPO).replace(os.sep, "."))
  assert found == listed, f"missing: {found - listed}, stale: {listed - found}"
