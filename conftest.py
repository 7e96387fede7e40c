"""The project's own test setup: pytester is enabled in pyproject (addopts), seeds are explicit."""

import os

import pytest

# Tests must not depend on whether the machine sets CI: profiles are chosen explicitly where needed.
os.environ.pop("PYTEST_PRIVACY_PROFILE", None)


def pytest_configure(config: pytest.Config) -> None:
    # Under -n N, each worker (and the pytest runs its tests start) takes its share of the cores:
    # torch's default of a thread per core in every worker makes them spin against each other.
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    # torch is imported here, after OMP_NUM_THREADS is set and before any test runs: pytester's
    # in-process runs restore sys.modules afterwards, deleting every module first imported inside
    # them. A torch first imported inside one was deleted, and the next `import torch` initialised
    # its C extension a second time: SystemError ("bad call flags") and a segmentation fault in a
    # later test (seen when tests/plugin ran before examples/ in one process; a run that collects
    # tests/unit imported torch first and never hit it).
    import torch  # noqa: F401
