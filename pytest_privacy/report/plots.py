"""Log-log ROC plots of recorded results, as the LiRA paper draws them (needs matplotlib: extra ``plot``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..results import AttackResult

__all__ = ["plot_roc", "roc_figure", "write_plots"]


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("ROC plots need matplotlib: pip install 'pytest-privacy[plot]'") from None


def roc_figure(result: AttackResult) -> Any:
    """A matplotlib figure of ``result``'s ROC on log-log axes with its Clopper-Pearson band, the
    chance diagonal, the gate's FPR limit and TPR limit, and the point that decided the verdict.

    The legend sits to the right of the axes, never on them: a label-only attack's coarse ROC has
    its interesting part near FPR 1, where a legend inside the axes would hide it. Save the figure
    with ``bbox_inches="tight"`` (as :func:`plot_roc` does) and close it with ``plt.close(fig)``.
    """
    _require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    floor = 0.5 / max(result.n_nonmembers, 1)  # log axes cannot show 0: draw it half a point below
    fpr = np.clip(result.roc_fpr, floor, 1)
    # Wider than the old 5 x 4.5 so the axes keep their size beside the legend; the constrained
    # layout makes room for the legend in the figure.
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110, layout="constrained")
    ax.fill_between(fpr, np.clip(result.roc_tpr_low, floor, 1), np.clip(result.roc_tpr_high, floor, 1),
                    step="post", alpha=0.25, color="C0", label=f"{result.confidence:.0%} band (TPR)")
    ax.step(fpr, np.clip(result.roc_tpr, floor, 1), where="post", color="C0", label=f"{result.attack} (AUC {result.auc:.3f})")
    ax.plot([floor, 1], [floor, 1], ls=":", color="grey", label="chance")
    ax.axvline(result.fpr, color="C3", ls="--", lw=1, label=f"FPR limit {result.fpr:g}")
    if result.gate == "tpr_at_fpr" and result.max_tpr is not None:
        ax.axhline(result.max_tpr, color="C1", ls="--", lw=1, label=f"max TPR {result.max_tpr:g}")
    ax.plot([max(result.fpr_achieved, floor)], [max(result.tpr, floor)], "o", color="k",
            label=f"{result.verdict.value.upper()}: TPR {result.tpr:.3f} @ FPR {result.fpr_achieved:.3g}")
    ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1), xlabel="false-positive rate",
           ylabel="true-positive rate", title=(result.test_id or result.attack).split("::")[-1][:60])
    # Outside the axes, to their right: the curve can run anywhere in the square without being covered.
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, fontsize=7, frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    return fig


def plot_roc(result: AttackResult, path: str | Path) -> Path:
    """Draw ``result``'s ROC (see :func:`roc_figure`) and save it as PNG."""
    fig = roc_figure(result)  # (checks for matplotlib and picks the Agg backend first)
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, bbox_inches="tight")  # the legend outside the axes is kept, not cut off
    finally:
        plt.close(fig)
    return out


def write_plots(results: list, directory: str | Path) -> list[Path]:
    """One PNG per attack result in ``directory``, named after the test and attack."""
    _require_matplotlib()
    paths = []
    for i, r in enumerate(results):
        if not isinstance(r, AttackResult) or not r.roc_fpr:
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{r.test_id or 'result'}-{r.attack}")[-120:]
        paths.append(plot_roc(r, Path(directory) / f"{i:03d}-{name}.png"))
    return paths
