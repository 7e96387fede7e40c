"""The report room: how results are recorded and written.

- :mod:`.recorder` (core, no pytest): ``record_result`` and the ``recording()`` block that collects
  what the helpers record; results travel as JSON (``to_json``/``from_json``).
- :mod:`.summary`: the one-line-per-result terminal summary and the compact junit properties.
- :mod:`.session_report`: the versioned JSON report of a run.
- :mod:`.plots`: log-log ROC plots (matplotlib).
- :mod:`.hookspec` and :mod:`.writers` (plugin side): ``pytest_privacy_write_reports``, which the
  built-in writers (terminal summary, JSON, plots) implement and any third-party plugin may too.
"""

from .recorder import from_json, record_result, recording, to_json

__all__ = ["from_json", "record_result", "recording", "to_json"]
