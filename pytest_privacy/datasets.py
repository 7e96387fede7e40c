"""Example data sets, all generated or shipped locally (never downloaded)."""

from __future__ import annotations

import string
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Dataset", "load_example_dataset"]

EXAMPLE_DATASETS = ("digits", "mnist1d", "shapes32", "synthetic", "tickets")

SHAPES32_CLASSES = ("disc", "square", "triangle", "ring", "cross", "frame", "bar", "stripes", "checker", "dots")


class Dataset(NamedTuple):
    """Inputs and integer labels; unpacks as ``x, y``."""

    x: np.ndarray
    y: np.ndarray


def load_example_dataset(name: str, *, n: int | None = None, seed: int = 0, tokenizer: str | None = None) -> Any:
    """Load an example data set: a classification one (``x, y``), or ``"tickets"`` (a TextDataset).

    - ``"digits"``: scikit-learn's 1,797 handwritten 8x8 digits, ``x [N, 8, 8]`` in [0, 1]
      (``n`` takes a seeded random subset).
    - ``"mnist1d"``: the MNIST-1D generator (Greydanus 2020) run locally, ``x [N, 40]``, standardised,
      default ``n=4000``; needs the ``mnist1d`` package (extra ``examples``).
    - ``"shapes32"``: CIFAR-shaped generated images, ``x [N, 3, 32, 32]`` float32, ``y [N]`` int64,
      default ``n=10000``. Ten classes, one kind of shape each (``SHAPES32_CLASSES``: disc, square,
      triangle, ring, cross, frame, bar, and square patches of stripes, checks and dots), each image
      with a random scale, aspect, rotation and small shift, a light-on-dark or dark-on-light colour
      pair drawn independently of the class, a background gradient, label-independent clutter (two
      small discs and a line) and Gaussian pixel noise. Classes are exactly balanced (``n // 10`` or
      one more each). Pixels are standardised with fixed constants, ``(v - 0.5) / 0.28`` for
      intensities ``v`` near [0, 1], so each channel has mean ~0 and std ~1 (an image does not
      depend on the others). Made with numpy alone, deterministic in ``(n, seed)``.
    - ``"synthetic"``: ``n`` (default 1000) points of a 4-class Gaussian mixture in 20 dimensions.
    - ``"tickets"``: ``n`` (default 2000) generated customer-support tickets, each with a person's name,
      phone number and e-mail address marked as PII, as a
      :class:`~pytest_privacy.data.text.TextDataset` with a word-level tokenizer trained on them
      (``dataset.tokenizer``, which also knows the default canary format and the ten digits) and the
      PII as token spans (``dataset.pii_spans``); 64 tokens at most.
      ``tokenizer="bpe"``: a byte-level BPE of 512 tokens instead, trained here on the tickets
      (``tokenizers``, the ``lm`` extra; a ``tokenizers.Tokenizer`` that decodes back to the text
      exactly; never downloaded), about 49 tokens a ticket. Deterministic in ``(n, seed)``.
    """
    if tokenizer is not None and name != "tickets":
        raise ValueError(f"tokenizer= chooses the tickets' tokenizer; {name!r} is not text.")
    if name == "tickets":
        n = 2000 if n is None else n
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n must be an integer of at least 2 for 'tickets', got {n!r}.")
        if tokenizer not in (None, "word", "bpe"):
            raise ValueError(f"tokenizer must be 'word' (the default) or 'bpe' (byte-level BPE), got {tokenizer!r}.")
        return _tickets(int(n), int(seed), bpe=tokenizer == "bpe")
    if name == "digits":
        x, y = _digits()
    elif name == "mnist1d":
        x, y = _mnist1d(4000 if n is None else int(n), seed)
        n = None
    elif name == "shapes32":
        n = 10000 if n is None else n
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n must be an integer of at least 2 for 'shapes32', got {n!r}.")
        x, y = _shapes32(int(n), int(seed))
        n = None
    elif name == "synthetic":
        x, y = _synthetic(1000 if n is None else int(n), seed)
        n = None
    else:
        raise ValueError(f"unknown example data set {name!r}; choose from {EXAMPLE_DATASETS}.")
    if n is not None:
        if not 2 <= n <= len(x):
            raise ValueError(f"n must be between 2 and {len(x)} for {name!r}, got {n}.")
        idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
        x, y = x[idx], y[idx]
    return Dataset(x.copy(), y.copy())


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the 'digits' data set ships with scikit-learn: pip install scikit-learn") from exc
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


@lru_cache(maxsize=4)
def _mnist1d(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError("the 'mnist1d' data set needs its generator: pip install mnist1d") from exc
    args = get_dataset_args()
    args.num_samples = n
    args.seed = seed
    args.train_split = 1.0  # the audit population is all of it; the plugin splits
    state = np.random.get_state()  # the generator reseeds numpy's global RNG; leave it as found
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    return data["x"].astype(np.float32), data["y"].astype(np.int64)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_classes, dim = 4, 20
    centers = rng.normal(0, 1.0, size=(n_classes, dim))
    y = rng.integers(0, n_classes, size=n)
    x = centers[y] + rng.normal(0, 1.5, size=(n, dim))
    return x.astype(np.float32), y.astype(np.int64)


# shapes32: rendering constants. Shape radius, aspect and shift in pixels; colours in [0, 1].
_S32_SIZE = 32
_S32_CHUNK = 1024  # images rendered at a time (cache-sized arrays); part of the output's definition
_S32_RADIUS = (6.5, 11.5)
_S32_ASPECT = (0.8, 1.25)
_S32_SHIFT = 2.0
_S32_LIGHT, _S32_DARK = 0.4, 0.6  # a light colour has channels in [0.4, 1], a dark one in [0, 0.6]
_S32_GRADIENT = 0.15
_S32_CLUTTER = 2
_S32_NOISE = 0.06
_S32_MEAN, _S32_STD = 0.5, 0.28


def _coverage(d: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Signed distance (shape units, < 0 inside) -> coverage in [0, 1], anti-aliased over a pixel."""
    return np.clip(0.5 - d * px, 0.0, 1.0)


def _shape_alpha(k: int, u: np.ndarray, v: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Coverage of class ``k``'s shape at shape-frame coordinates ``u, v`` (radius 1 = ``px`` pixels)."""
    au, av = np.abs(u), np.abs(v)
    box = np.maximum(au, av)
    if k == 0:  # disc
        d = np.sqrt(u * u + v * v) - 1.0
    elif k == 1:  # square
        d = box - 0.8
    elif k == 2:  # equilateral triangle, circumradius 1
        d = np.maximum(np.maximum(v, -0.866 * u - 0.5 * v), 0.866 * u - 0.5 * v) - 0.5
    elif k == 3:  # ring
        d = np.abs(np.sqrt(u * u + v * v) - 0.72) - 0.24
    elif k == 4:  # cross (plus sign)
        d = np.minimum(np.maximum(au - 0.28, av - 1.0), np.maximum(au - 1.0, av - 0.28))
    elif k == 5:  # frame (hollow square)
        d = np.abs(box - 0.65) - 0.2
    elif k == 6:  # bar
        d = np.maximum(au - 1.0, av - 0.3)
    else:  # a square patch of a texture with period 0.5 (at least 3 pixels)
        p = 0.5
        fu = u / p - np.floor(u / p) - 0.5
        fv = v / p - np.floor(v / p) - 0.5
        if k == 7:  # stripes
            pattern = (np.abs(fu) - 0.25) * p
        elif k == 8:  # checks
            pattern = np.minimum(np.abs(fu), np.abs(fv)) * p * np.where(fu * fv > 0, -1.0, 1.0).astype(u.dtype)
        else:  # dots
            pattern = (np.sqrt(fu * fu + fv * fv) - 0.3) * p
        return _coverage(box - 0.85, px) * _coverage(pattern, px)
    return _coverage(d, px)


def _per(a: np.ndarray) -> np.ndarray:
    """Per-image values ``[m]`` -> ``[m, 1, 1]`` float32, to broadcast over a pixel grid."""
    return a.astype(np.float32)[:, None, None]


def _rgb(a: np.ndarray) -> np.ndarray:
    """Per-image colours ``[m, 3]`` -> ``[m, 3, 1, 1]`` float32, to broadcast over ``[m, 3, H, W]``."""
    return a.astype(np.float32)[:, :, None, None]


@lru_cache(maxsize=2)  # 10,000 images are 123 MB
def _shapes32(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f32, size, n_classes = np.float32, _S32_SIZE, len(SHAPES32_CLASSES)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    # Every random parameter first, then rendering chunk by chunk (noise drawn per chunk).
    radius = rng.uniform(*_S32_RADIUS, n)
    aspect = rng.uniform(*_S32_ASPECT, n)
    centre = (size - 1) / 2 + rng.uniform(-_S32_SHIFT, _S32_SHIFT, (n, 2))
    angle = rng.uniform(0, 2 * np.pi, n)
    light = rng.uniform(_S32_LIGHT, 1.0, (n, 3))
    dark = rng.uniform(0.0, _S32_DARK, (n, 3))
    light_on_dark = rng.random(n)[:, None] < 0.5
    fg, bg = np.where(light_on_dark, light, dark), np.where(light_on_dark, dark, light)
    grad_angle = rng.uniform(0, 2 * np.pi, n)
    grad_colour = rng.normal(0, _S32_GRADIENT, (n, 3))
    blob_at = rng.uniform(0, size - 1, (n, _S32_CLUTTER, 2))
    blob_radius = rng.uniform(1.0, 3.0, (n, _S32_CLUTTER))
    blob_colour = rng.uniform(0, 1, (n, _S32_CLUTTER, 3))
    line_at = rng.uniform(0, size - 1, (n, 2))
    line_angle = rng.uniform(0, 2 * np.pi, n)
    line_length = rng.uniform(6, 20, n)
    line_colour = rng.uniform(0, 1, (n, 3))

    x = np.empty((n, 3, size, size), f32)
    grid = np.arange(size, dtype=f32)  # pixel centres; positions above are in these units
    gy, gx = grid[None, :, None], grid[None, None, :]
    half = f32((size - 1) / 2)
    gx_c, gy_c = gx - half, gy - half  # centred, for the gradient
    for start in range(0, n, _S32_CHUNK):
        sl = slice(start, min(n, start + _S32_CHUNK))
        # Background: a colour plus a linear gradient across the image.
        ramp = (_per(np.cos(grad_angle[sl])) * gx_c + _per(np.sin(grad_angle[sl])) * gy_c) / half
        img = _rgb(bg[sl]) + _rgb(grad_colour[sl]) * ramp[:, None]
        for j in range(_S32_CLUTTER):  # small discs behind the shape
            dx, dy = gx - _per(blob_at[sl, j, 0]), gy - _per(blob_at[sl, j, 1])
            a = np.clip(_per(blob_radius[sl, j]) + 0.5 - np.sqrt(dx * dx + dy * dy), 0, 1)
            img += (_rgb(blob_colour[sl, j]) - img) * a[:, None]
        cos, sin = _per(np.cos(line_angle[sl])), _per(np.sin(line_angle[sl]))  # a one-pixel line segment
        dx, dy = gx - _per(line_at[sl, 0]), gy - _per(line_at[sl, 1])
        t = np.clip(dx * cos + dy * sin, 0, _per(line_length[sl]))
        a = np.clip(1.0 - np.sqrt((dx - t * cos) ** 2 + (dy - t * sin) ** 2), 0, 1)
        img += (_rgb(line_colour[sl]) - img) * a[:, None]
        # The shape, in its own rotated and scaled frame.
        cos, sin = _per(np.cos(angle[sl])), _per(np.sin(angle[sl]))
        dx, dy = gx - _per(centre[sl, 0]), gy - _per(centre[sl, 1])
        px = _per(radius[sl])
        u = (cos * dx + sin * dy) / px
        v = (cos * dy - sin * dx) / (px * _per(aspect[sl]))
        alpha = np.empty(u.shape, f32)
        labels = y[sl]
        for k in range(n_classes):
            idx = np.flatnonzero(labels == k)
            if idx.size:
                alpha[idx] = _shape_alpha(k, u[idx], v[idx], px[idx])
        img += (_rgb(fg[sl]) - img) * alpha[:, None]
        img += rng.standard_normal(img.shape, dtype=f32) * f32(_S32_NOISE)
        x[sl] = (img - f32(_S32_MEAN)) / f32(_S32_STD)
    return x, y


_FIRST = ("Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kaya", "Liam", "Mira",
          "Noor", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Ugo", "Vera", "Wen", "Yusuf", "Zoe")
_LAST = ("Abara", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen", "Kim",
         "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quispe", "Rossi", "Silva", "Tanaka", "Usman", "Varga")
_ISSUES = ("my order {order} has not arrived", "I was charged twice for order {order}",
           "the parcel for order {order} came damaged", "I want to return order {order}",
           "the invoice for order {order} shows the wrong address", "my account is locked since yesterday")
_TEMPLATES = (
    "Hi, this is {name}. {issue}. Please call me at {phone} or write to {email}.",
    "Hello support, {issue}. My name is {name}, phone {phone}, e-mail {email}. Thanks!",
    "{name} here: {issue}. You can reach me on {phone} ({email}).",
)


def _bpe(corpus: list[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE trained on ``corpus`` (id 0 the padding): every byte is a token, so no text is
    unknown and each digit alone is one token (the canaries' alphabet); it decodes back exactly."""
    try:
        from tokenizers import (
            Tokenizer,
            decoders,
            models,
            pre_tokenizers,
            processors,
            trainers,
        )
    except ImportError:
        raise ImportError(
            "tokenizer='bpe' trains a byte-level BPE with the tokenizers package: pip install 'pytest-privacy[lm]'."
        ) from None
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


def _tickets(n: int, seed: int, *, bpe: bool = False) -> Any:
    """``n`` support tickets with a name, a phone number and an e-mail address each, marked as PII."""
    from .data.text import DEFAULT_CANARY_FORMAT, TextDataset, WordTokenizer

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x7469,)))
    texts, char_spans = [], []
    for _ in range(n):
        first, last = _FIRST[rng.integers(len(_FIRST))], _LAST[rng.integers(len(_LAST))]
        fields = {
            "name": f"{first} {last}",
            "phone": f"{rng.integers(100, 1000)} {rng.integers(100, 1000)} {rng.integers(1000, 10000)}",
            "email": f"{first.lower()}.{last.lower()}{rng.integers(10, 100)}@example.com",
            "issue": _ISSUES[rng.integers(len(_ISSUES))].format(order=rng.integers(10000, 100000)),
        }
        template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
        text, spans = "", []
        for literal, field, _, _ in string.Formatter().parse(template):
            text += literal
            if field:
                value = fields[field]
                if field in ("name", "phone", "email"):
                    spans.append((len(text), len(text) + len(value)))
                text += value[0].upper() + value[1:] if field == "issue" and text.endswith(". ") else value
        texts.append(text)
        char_spans.append(spans)
    # The tokenizer also knows the default canary format and the ten digits (lm_canary_run's secrets).
    corpus = [*texts, DEFAULT_CANARY_FORMAT, " ".join("0123456789")]
    tokenizer = _bpe(corpus) if bpe else WordTokenizer(corpus)
    token_spans = []
    for text, spans in zip(texts, char_spans):
        offsets = tokenizer.encode(text).offsets if bpe else tokenizer.offsets(text)
        token_spans.append([
            # (a span starts at its first token with text: a bare space before it belongs to the prompt)
            (next(i for i, (s, e) in enumerate(offsets) if s >= start and e > s), 1 + max(i for i, (_, e) in enumerate(offsets) if e <= end))
            for start, end in spans
        ])
    # A BPE trained on few tickets has few merges, so its tickets are longer: room for the longest, by 8.
    longest = max(len(e.ids) for e in tokenizer.encode_batch(texts)) if bpe else 0
    return TextDataset(texts, tokenizer=tokenizer, max_length=max(64, -(-longest // 8) * 8), pii_spans=token_spans)
