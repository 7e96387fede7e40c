"""Small PNG images of image records, for the HTML report's most vulnerable records.

Only the HTML report shows them (a file the user asked for, next to their data): the JSON report and
stored runs never carry records, only their content hashes. Encoded here with zlib, without an
imaging library.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

__all__ = ["is_image", "png_data_uri"]


def is_image(record: np.ndarray) -> bool:
    """A record is an image when it has spatial axes: ``[H, W]``, or ``[C, H, W]`` with 1 or 3
    channels (flat feature vectors such as digits' 64 pixels are not guessed at)."""
    shape = np.shape(record)
    return (len(shape) == 2 and min(shape) >= 4) or (len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) >= 4)


def png_data_uri(record: np.ndarray) -> str:
    """``data:image/png;base64,...`` of an image record, its values stretched to 0-255 (records are
    usually standardised, so their own range is what shows the content)."""
    if not is_image(record):
        raise ValueError(f"not an image record: shape {np.shape(record)} (expected [H, W] or [C, H, W], C in 1, 3)")
    x = np.asarray(record, dtype=np.float64)
    x = x[None] if x.ndim == 2 else x
    low, high = float(x.min()), float(x.max())
    pixels = np.zeros_like(x) if high <= low else (x - low) / (high - low)
    pixels = np.round(pixels * 255).astype(np.uint8).transpose(1, 2, 0)  # [H, W, C]
    height, width, channels = pixels.shape
    rows = b"".join(b"\x00" + pixels[r].tobytes() for r in range(height))  # filter 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    colour = 0 if channels == 1 else 2  # greyscale or RGB, 8 bits
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()
