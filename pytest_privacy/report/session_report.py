"""The versioned JSON report of a run (``--privacy-report``): results, settings, versions, platform."""

from __future__ import annotations

import datetime
import platform
import sys
from pathlib import Path
from typing import Any

from ..results import NOT_STORED, AnyResult, SessionReport
from .storage import current_commit

__all__ = ["build_report", "write_report"]


def build_report(
    results: list[AnyResult], config: dict[str, Any], *, models_trained: int = 0,
    models_loaded: int = 0, seconds_training: float = 0.0, cache_keys: list[str] | None = None,
    note: str | None = None,
) -> SessionReport:
    """The versioned report of a run: results, settings, library versions and platform (``note``
    says why a report has no results)."""
    from .. import __version__

    torch = sys.modules.get("torch")
    return SessionReport(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        pytest_privacy=__version__,
        torch=getattr(torch, "__version__", None),
        python=platform.python_version(),
        platform=platform.platform(),
        config=config,
        models_trained=models_trained,
        models_loaded=models_loaded,
        seconds_training=seconds_training,
        cache_keys=sorted(cache_keys or ()),
        commit=current_commit(),
        results=results,
        note=note,
    )


def write_report(path: str | Path, report: SessionReport) -> None:
    """Write the report as JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(report.model_dump_json(indent=2, exclude=NOT_STORED))  # no records' images
    tmp.replace(path)
