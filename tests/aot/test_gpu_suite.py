"""benchmarks/gpu_suite.sh --dry_run: the one-shot GPU suite runs end to end on CPU at tiny shapes, printing its
four sections (so the day a GPU is at hand, the script is known to work)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_suite_dry_run():
  env = {**os.environ, "PYTHON": sys.executable}
  env.pop("XLA_FLAGS", None)  # one CPU device, as one GPU
  proc = subprocess.run(["bash", os.path.join(REPO, "benchmarks", "gpu_suite.sh"), "--dry_run"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)
  out = proc.stdout
  assert proc.returncode == 0, (out[-2000:], proc.stderr[-3000:])
  for section in ("== 1. SFT train step (measured)", "== 2. KV-cache decode (measured)",
                  "== 3. one MTPO iteration at the paper's batch (measured)",
                  "== 4. ahead-of-time prediction for the same steps (compiler)"):
    assert section in out
  assert "tokens/s" in out and "HBM-bandwidth bound" in out and "steady iteration" in out
  aot = out[out.index("== 4."):]
  assert "  sft " in aot and "  actor_critic " in aot and "roofline" in aot and "cpu (native)" in aot
