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
