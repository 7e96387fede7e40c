"""The one declared parameter check of the statistics: a number (an integer when asked; never a bool,
never NaN) in an interval written as in mathematics, or a ValueError that names it."""

import math
import re

import numpy as np
import pytest

from pytest_privacy.stats.checks import check_number


@pytest.mark.parametrize(
    ("interval", "inside", "outside"),
    [
        ("(0, 1)", [1e-12, 0.5, 1 - 1e-12], [0, 1, -0.1, 1.5]),
        ("[0, 1)", [0, 0.999], [1, -1e-12]),
        ("[0.5, 1]", [0.5, 1], [0.4999, 1.0001]),
        ("(0, inf)", [1e-300, 1e300], [0, math.inf, -1]),
        ("[0, inf)", [0, 7.5], [math.inf, -1e-9]),
    ],
)
def test_bounds_open_and_closed_as_written(interval, inside, outside):
    for x in inside:
        assert check_number("x", x, interval) == float(x)
    for x in outside:
        with pytest.raises(ValueError, match=re.escape(f"x must be a number in {interval}, got")):
            check_number("x", x, interval)


@pytest.mark.parametrize("bad", [True, np.bool_(False), math.nan, "0.5", None, [0.5]])
def test_not_a_number_is_refused(bad):
    with pytest.raises(ValueError, match="must be a number"):
        check_number("fpr", bad, "(0, 1)")


def test_integers_when_asked_and_numpy_scalars_as_python_numbers():
    assert check_number("n", np.int64(4), "[1, inf)", integer=True) == 4
    assert type(check_number("n", np.int64(4), "[1, inf)", integer=True)) is int
    assert type(check_number("p", np.float32(0.25), "(0, 1)")) is float
    for bad in (2.0, True, 0):
        with pytest.raises(ValueError, match=r"n must be an integer in \[1, inf\)"):
            check_number("n", bad, "[1, inf)", integer=True)
    with pytest.raises(ValueError, match=r"\(what it means\)"):
        check_number("d", -1, "[0, 1)", why="what it means")
