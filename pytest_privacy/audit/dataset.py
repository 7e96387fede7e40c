"""The audit's data set, checked before anything trains, once per session.

``privacy_dataset`` may be ``(x, y)`` arrays (numpy, memory-mapped, torch tensors, anything
``np.asarray`` takes), an object with ``.x``/``.y``, or a map-style ``torch.utils.data.Dataset``
(anything with ``__len__`` and ``__getitem__`` returning ``(x, y)`` pairs), which is read once into
``x [N, ...] float32`` and ``y [N] int64``. torch is never imported here: a Dataset is duck-typed.

**Once per session.** Checking (and reading a Dataset) happens once per data set: the same arrays
or Dataset object passed again return the arrays checked before, as long as a cheap
:func:`~pytest_privacy.audit.fingerprint.fingerprint` of the source (its shape, dtype, first and
last rows and a fixed sample of 4,096 elements, all of it up to 1 MiB; for a Dataset: its length and
16 items spread over it, the first and last included) is unchanged. :func:`dataset_identity`, the
full SHA-256 of the checked arrays that keys the model cache, is likewise computed once per checked
data set. Sources are held weakly where they allow it; at most 4 checked data sets are kept.

**Limit.** An in-place edit that the sample misses (a row in the middle of a large array) is not
seen within the session: the old check, and with it possibly the old arrays and cache key, are
reused. After editing data in place, pass a new array or Dataset object (``x = x.copy()``) or call
:func:`clear_dataset_cache`; ``training_function(version=...)`` renames the cached models but does not
refresh the arrays already checked. A new session always checks and hashes afresh.
"""

from __future__ import annotations

import hashlib
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import check_inputs, check_labels, row_ids
from ..engine.store import digest
from .fingerprint import fingerprint

__all__ = [
    "PrivacyDataWarning", "as_dataset", "checked_dataset", "clear_dataset_cache", "dataset_identity", "materialise",
]

_CACHE_SIZE = 4  # checked data sets kept per process (a session rarely has more than one)
_DATASET_SAMPLE = 16  # items of a map-style Dataset read to fingerprint it


class PrivacyDataWarning(UserWarning):
    """The data set was changed before the audit (duplicate rows were dropped)."""


def as_dataset(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accept ``(x, y)`` (a tuple, ``Dataset``, or anything with ``.x``/``.y``) and check it before
    anything trains: at least two classes; rows with identical inputs are dropped but the first,
    with a warning, since the split would otherwise put copies of a member among the non-members."""
    x, y, _ = checked_dataset(dataset)
    return x, y


def checked_dataset(dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`as_dataset`, with the mask of the rows it kept (to align per-row data with them).

    Memoised per source object while its fingerprint holds (see the module's docstring): the
    arrays returned are shared between calls and must not be edited in place."""
    x, y, kept, note = _checked(dataset)
    if note is not None:  # every audit of this data set says so, not only the first
        warnings.warn(note, PrivacyDataWarning, stacklevel=4)
    return x, y, kept


def dataset_identity(x: np.ndarray, y: np.ndarray) -> str:
    """``digest(x, y)``, the content hash that keys the model cache, computed once per pair of
    arrays (the ones :func:`checked_dataset` returns) and reused while their fingerprint holds."""
    key = (id(x), id(y))
    mark = fingerprint(x, y)
    known = _IDENTITIES.get(key)
    if known is not None and known[0]() is x and known[1]() is y and known[2] == mark:
        return known[3]
    ident = digest(x, y)
    refs = (_ref(x, _IDENTITIES, key), _ref(y, _IDENTITIES, key))
    if all(isinstance(r, weakref.ref) for r in refs):  # only while both arrays are alive
        _IDENTITIES[key] = (*refs, mark, ident)
        _IDENTITIES.move_to_end(key)
        while len(_IDENTITIES) > 2 * _CACHE_SIZE:
            _IDENTITIES.popitem(last=False)
    return ident


def clear_dataset_cache() -> None:
    """Forget every checked data set and identity (the next call checks and hashes again)."""
    _CACHE.clear()
    _IDENTITIES.clear()


def materialise(dataset: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """Read a map-style Dataset once: ``x [N, ...] float32`` (int64 when its inputs are integers:
    token ids stay exact), ``y [N] int64`` and the fingerprint
    of its sampled items. Items must be ``(x, y)`` pairs, ``x`` numeric with one shape for all, ``y``
    an integer label; a Dataset whose items change between two reads is an error."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the data set is empty: privacy_dataset has no items; an audit needs points to train and test on.")
    sample = _sample_indices(n)
    first_x, first_y = _item(dataset, 0)
    x = np.empty((n, *first_x.shape), dtype=np.int64 if first_x.dtype.kind in "iu" else np.float32)
    y = np.empty(n, dtype=np.int64)
    seen: dict[int, str] = {}
    for i in range(n):
        xi, yi = (first_x, first_y) if i == 0 else _item(dataset, i)
        if (xi.dtype.kind in "iu") != (first_x.dtype.kind in "iu"):
            raise TypeError(
                f"privacy_dataset item {i}: x is {xi.dtype} but item 0's is {first_x.dtype}; every item's input must be "
                "integers (token ids) or every one floats, so that none is silently converted."
            )
        if xi.shape != first_x.shape:
            raise ValueError(
                f"privacy_dataset item {i}: x has shape {list(xi.shape)} but item 0 has {list(first_x.shape)}; "
                "every item's input must have the same shape (resize or pad them)."
            )
        x[i] = xi
        y[i] = yi
        if i in sample:
            seen[i] = _item_digest(xi, yi)
    again = {i: _item_digest(*_item(dataset, i)) for i in sorted(sample)}
    changed = [i for i in sorted(sample) if again[i] != seen[i]]
    if changed:
        raise ValueError(
            f"privacy_dataset item {changed[0]} differs between two reads (a random transform?): an audit "
            "needs fixed inputs; drop random transforms from the Dataset (augment in training instead)."
        )
    return x, y, _dataset_mark(dataset, n, [again[i] for i in sorted(sample)])


# --- the per-session cache ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    refs: tuple[Callable[[], Any], ...]  # the source objects, weakly held where they allow it
    mark: str  # the sources' fingerprint when checked
    x: np.ndarray | None  # None: the source's own array (not held here, so that it can die)
    y: np.ndarray | None
    kept: np.ndarray
    note: str | None  # the duplicate-rows warning, repeated on every use


_CACHE: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
_IDENTITIES: OrderedDict[tuple[int, int], tuple[Any, ...]] = OrderedDict()


def _checked(dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    sources, mark, check = _source(dataset)
    n_classes = getattr(dataset, "n_classes", None)
    key = (*(id(s) for s in sources), repr(n_classes))  # the classes named are part of what was checked
    entry = _CACHE.get(key)
    if entry is not None and all(r() is s for r, s in zip(entry.refs, sources)) and entry.mark == mark():
        _CACHE.move_to_end(key)
    else:
        x, y, fresh_mark = check()
        x, y, kept, note = _validated(x, y, n_classes)
        own = [None if got is source else got for got, source in zip((x, y), (*sources, None, None))]
        entry = _Entry(tuple(_ref(s, _CACHE, key) for s in sources), fresh_mark, *own, kept, note)
        _CACHE[key] = entry
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    x = sources[0] if entry.x is None else entry.x
    y = sources[1] if entry.y is None else entry.y
    return x, y, entry.kept, entry.note


def _source(dataset: Any) -> tuple[tuple[Any, ...], Callable[[], str], Callable[[], tuple[Any, Any, str]]]:
    """The objects that identify ``dataset``'s content, their fingerprint, and how to read it."""
    if isinstance(dataset, dict):
        raise TypeError(
            f"privacy_dataset must return (x, y) arrays, got a dict with keys {sorted(dataset)[:5]}; "
            "return (data['x'], data['y']) or the like."
        )
    if hasattr(dataset, "x") and hasattr(dataset, "y"):
        return _arrays(dataset.x, dataset.y)
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        return _arrays(*dataset)
    tensors = getattr(dataset, "tensors", None)
    if type(dataset).__name__ == "TensorDataset" and type(dataset).__module__.startswith("torch.") \
            and isinstance(tensors, tuple) and len(tensors) == 2:
        return _arrays(*tensors)  # its items are its tensors' rows: no need to read them one by one
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__") and not isinstance(dataset, (tuple, str, bytes)):
        def mark() -> str:
            n = len(dataset)
            return _dataset_mark(dataset, n, [_item_digest(*_item(dataset, i)) for i in sorted(_sample_indices(n))])

        return (dataset,), mark, lambda: materialise(dataset)
    raise TypeError(
        f"privacy_dataset must return (x, y) arrays or a map-style Dataset of (x, y) items, got {type(dataset).__name__}."
    )


def _arrays(x: Any, y: Any) -> tuple[tuple[Any, ...], Callable[[], str], Callable[[], tuple[Any, Any, str]]]:
    xa, ya = np.asarray(x), np.asarray(y)  # no copy for arrays, memory maps and CPU tensors
    mark = fingerprint(xa, ya)
    return (x, y), lambda: mark, lambda: (xa, ya, mark)


def _validated(x: Any, y: Any, n_classes: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    x = check_inputs(x)
    y = check_labels(y, len(x))
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(
            f"privacy_dataset has one class only (label {int(classes[0])}); a classifier audit needs at least 2 classes."
        )
    _check_classes(classes, n_classes)
    ids = row_ids(x)
    first = np.zeros(len(x), dtype=bool)
    first[np.unique(ids, return_index=True)[1]] = True
    note = None
    if not first.all():
        note = (
            f"privacy_dataset has {int((~first).sum())} rows whose inputs duplicate an earlier row; the audit "
            f"keeps the first of each ({int(first.sum())} of {len(x)} rows), so that no copy of a member is "
            "counted as a non-member."
        )
        x, y = x[first], y[first]
    return x, y, first, note


def _check_classes(classes: np.ndarray, n_classes: Any) -> None:
    """Labels must be the classes ``0..C-1``: a model has one output per class up to the largest
    label, so one stray label (100 among 0..9) would build a 101-class model without a word. A data
    set whose absent classes are real names them with an ``n_classes`` attribute (an object with
    ``.x``, ``.y`` and ``.n_classes``)."""
    top = int(classes[-1])
    if n_classes is not None:
        if not isinstance(n_classes, (int, np.integer)) or isinstance(n_classes, bool) or n_classes <= top:
            raise ValueError(
                f"privacy_dataset.n_classes must be an integer above the largest label ({top}), got {n_classes!r}."
            )
        return
    if classes.size == top + 1:
        return
    missing = np.setdiff1d(np.arange(top + 1), classes)
    shown = ", ".join(str(int(c)) for c in missing[:5]) + (", ..." if missing.size > 5 else "")
    raise ValueError(
        f"privacy_dataset's labels skip {missing.size} of the classes 0..{top} (missing: {shown}): a model with "
        f"{top + 1} outputs would be built for {classes.size} classes. Relabel them to 0..{classes.size - 1} "
        "(y = np.unique(y, return_inverse=True)[1]), or, if the absent classes are real, return an object with "
        f".x, .y and .n_classes = {top + 1} (or more)."
    )


def _ref(obj: Any, table: OrderedDict, key: tuple[int, ...]) -> Callable[[], Any]:
    """A weak reference to ``obj`` that drops ``table[key]`` when ``obj`` dies; a strong one (keeping
    ``obj`` alive while its entry is cached) for objects that take no weak reference (tuples, lists)."""

    def forget(dead: weakref.ref) -> None:
        entry = table.get(key)
        held = entry.refs if isinstance(entry, _Entry) else (entry or ())[:2]
        if any(r is dead for r in held):
            table.pop(key, None)

    try:
        return weakref.ref(obj, forget)
    except TypeError:
        return lambda: obj


# --- map-style Datasets ----------------------------------------------------------------------------


def _sample_indices(n: int) -> set[int]:
    """Up to ``_DATASET_SAMPLE`` item indices spread over ``[0, n)``, the first and last included."""
    return set(np.linspace(0, n - 1, min(n, _DATASET_SAMPLE)).round().astype(int).tolist())


def _item(dataset: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Item ``i`` as ``(x, y)`` arrays, or an error that names the index and the problem."""
    try:
        item = dataset[i]
    except Exception as exc:
        exc.add_note(f"(while reading privacy_dataset item {i})")
        raise
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        got = f"a {type(item).__name__} of length {len(item)}" if isinstance(item, (tuple, list)) else type(item).__name__
        raise TypeError(
            f"privacy_dataset item {i} is not an (x, y) pair: got {got}; a map-style Dataset's __getitem__ "
            "must return (input, label)."
        )
    xi, yi = np.asarray(item[0]), np.asarray(item[1])
    if xi.dtype.kind not in "iuf":
        raise TypeError(f"privacy_dataset item {i}: x must be a real numeric array or tensor, got dtype {xi.dtype}.")
    if yi.ndim != 0 or yi.dtype.kind not in "iu":
        raise TypeError(
            f"privacy_dataset item {i}: y must be an integer class label (an int or a 0-d integer tensor), got "
            f"{yi.dtype} of shape {list(yi.shape)}."
        )
    return xi, yi


def _item_digest(xi: np.ndarray, yi: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for arr in (xi, yi):
        h.update(f"{arr.dtype.str}{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _dataset_mark(dataset: Any, n: int, digests: list[str]) -> str:
    kind = type(dataset)
    return hashlib.blake2b(f"{kind.__module__}.{kind.__qualname__}|{n}|{'|'.join(digests)}".encode(), digest_size=16).hexdigest()
