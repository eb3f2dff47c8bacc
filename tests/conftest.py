"""Every test process sees 8 CPU devices, so sharding tests run anywhere (set before JAX starts).

The session shares one persistent XLA compilation cache, with every subprocess a test starts (the entrypoint,
multi-process and pipeline tests): most tests compile the same tiny programs again (a resumed run, another mesh,
another algorithm with the same shapes), and on 2 CPU cores compiling is most of their time. A cached program is
the same executable, so results stay bit-identical. MTPO_TEST_COMPILATION_CACHE=0 turns it off.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# The suite runs on CPU devices; with the tpu extra installed, JAX would otherwise start libtpu's runtime in every
# process (and print its "no TPU here" block on stderr). The AOT tests reach TPU topologies through libtpu anyway.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("MTPO_TEST_COMPILATION_CACHE", "1") != "0" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix="mtpo_test_jax_cache_")
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ.update(JAX_COMPILATION_CACHE_DIR=_CACHE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")

import jax  # noqa: E402  (after XLA_FLAGS on purpose)
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root() -> str:
  return REPO


def pytest_report_header(config):
  return f"jax {jax.__version__}, devices: {jax.device_count()} x {jax.devices()[0].platform}"
