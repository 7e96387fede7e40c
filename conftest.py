"""The project's own test setup: pytester is enabled in pyproject (addopts), seeds are explicit."""

import os

# Tests must not depend on whether the machine sets CI: profiles are chosen explicitly where needed.
os.environ.pop("PYTEST_PRIVACY_PROFILE", None)
