"""Recording results: the helpers call :func:`record_result`; whoever wants them opens a
:func:`recording` block (the plugin does, around each test). No module-level state: a block collects
the results of its own context only, so nested or in-process pytest sessions never mix results.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import TypeAdapter

from ..results import AnyResult, Result

__all__ = ["from_json", "record_result", "recording", "to_json"]

# The innermost open block: where results go and the test id they are tagged with.
_block: ContextVar[tuple[list[Any], dict[str, Any]] | None] = ContextVar("pytest_privacy_recording", default=None)
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Result)


@contextmanager
def recording(test_id: str | None = None, *, profile: str | None = None) -> Iterator[list[AnyResult]]:
    """Collect every result recorded inside the block (tagged with ``test_id`` and the budget
    ``profile`` it ran under) into the list it yields::

        with recording() as results:
            assert_tpr_at_fpr_below(model, data, fpr=1e-2, max_tpr=0.05)
        results[0].tpr
    """
    results: list[AnyResult] = []
    tags = {k: v for k, v in {"test_id": test_id, "profile": profile}.items() if v is not None}
    token = _block.set((results, tags))
    try:
        yield results
    finally:
        _block.reset(token)


def record_result(result: AnyResult) -> Any:
    """Tag ``result`` with the open block's test id and profile and add it to that block (if one is
    open); return the (tagged) result."""
    block = _block.get()
    if block is None:
        return result
    results, tags = block
    missing = {k: v for k, v in tags.items() if getattr(result, k) is None}
    if missing:
        result = result.model_copy(update=missing)
    results.append(result)
    return result


def to_json(result: AnyResult) -> str:
    """A result as JSON (how results travel from xdist workers; infinities as ``Infinity``)."""
    return result.model_dump_json()


def from_json(text: str) -> AnyResult:
    """A result from :func:`to_json`'s JSON."""
    return _ADAPTER.validate_json(text)
