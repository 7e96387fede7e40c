"""Image records as PNG data URIs for the HTML report: what counts as an image, and that the PNG
holds the record's pixels."""

import base64
import io

import numpy as np
import pytest

from pytest_privacy.report.thumbnails import is_image, png_data_uri


def _decode(uri: str) -> np.ndarray:
    image = pytest.importorskip("matplotlib.image")
    return image.imread(io.BytesIO(base64.b64decode(uri.removeprefix("data:image/png;base64,"))))


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (3, 5, 7)])
def test_the_png_holds_the_record_stretched_to_its_own_range(shape):
    x = np.random.default_rng(0).normal(size=shape)
    got = _decode(png_data_uri(x))
    expected = np.round((x - x.min()) / (x.max() - x.min()) * 255) / 255
    expected = expected[0] if len(shape) == 3 and shape[0] == 1 else expected
    expected = expected.transpose(1, 2, 0) if expected.ndim == 3 else expected
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_constant_record_is_black_not_a_division_by_zero():
    assert not _decode(png_data_uri(np.full((4, 4), 3.0))).any()


@pytest.mark.parametrize("shape", [(64,), (2, 8, 8), (3, 2, 8), (4, 4, 4, 4)])
def test_flat_or_odd_records_are_not_images(shape):
    assert not is_image(np.zeros(shape))
    with pytest.raises(ValueError, match="not an image record"):
        png_data_uri(np.zeros(shape))
