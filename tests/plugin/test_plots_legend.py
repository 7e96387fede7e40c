"""ROC plots keep their legend off the axes: a label-only attack's coarse curve near FPR 0.9 stays visible."""

from __future__ import annotations

import pytest

from pytest_privacy.results import AttackResult


def _label_only(gate: str = "tpr_at_fpr") -> AttackResult:
    """A label-only attack's ROC: few points, the interesting one at (0.9, 0.95)."""
    return AttackResult(
        verdict="fail", reason="-", gate=gate, fpr=0.1, max_tpr=0.2 if gate == "tpr_at_fpr" else None,
        confidence=0.95, tpr=0.95, tpr_low=0.9, tpr_high=0.98, fpr_achieved=0.9, fpr_low=0.85, fpr_high=0.94,
        threshold=0.5, tpr_at_fpr=0.1, n_members=200, n_nonmembers=200, auc=0.53, auc_low=0.48, auc_high=0.58,
        attack="label_only", variant="gap", n_references=0, seed=0, test_id="tests/test_x.py::test_label_only",
        roc_fpr=[0.0, 0.9, 1.0], roc_tpr=[0.0, 0.95, 1.0], roc_tpr_low=[0.0, 0.91, 0.98],
        roc_tpr_high=[0.02, 0.98, 1.0],
    )


@pytest.mark.parametrize("gate", ["tpr_at_fpr", "auc"])
def test_the_legend_sits_outside_the_axes(gate):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from pytest_privacy.report.plots import roc_figure

    fig = roc_figure(_label_only(gate))
    try:
        (ax,) = fig.axes
        legend = ax.get_legend()
        assert legend is not None and len(legend.get_texts()) >= 5
        fig.canvas.draw()  # lays the figure out, as saving it does
        renderer = fig.canvas.get_renderer()
        box, axes = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert not box.overlaps(axes), f"legend {box} overlaps the axes {axes}"
        # the curve's point at (0.9, 0.95) is inside the axes, and so not under the legend
        x, y = ax.transData.transform((0.9, 0.95))
        assert axes.contains(x, y) and not box.contains(x, y)
        # the whole legend is within the figure (the layout made room for it)
        assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
    finally:
        plt.close(fig)


def test_the_saved_plot_is_a_png_with_the_legend(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    from pytest_privacy.report.plots import plot_roc, write_plots

    path = plot_roc(_label_only(), tmp_path / "roc.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width > height  # the square axes plus the legend beside them
    assert image[..., :3].std() > 0.05  # something is drawn
    # right of the axes (the last third of the image) is not blank: the legend was saved, not cut off
    assert image[:, 2 * width // 3:, :3].min() < 0.5
    assert [p.name for p in write_plots([_label_only()], tmp_path / "plots")] == [
        "000-tests_test_x.py_test_label_only-label_only.png"
    ]
