"""What a user's training function reaches in the user's own code, hashed for the model cache key.

A training function's own source is not enough to name the models it trains: editing
``nn.Dropout(0.2)`` to ``0.5`` in the model class it builds changes every model and leaves the
function's source as it was. :func:`code_identity` follows what the function references, transitively,
through the user's code and hashes all of it:

- functions and classes (their source, from :func:`inspect.getsource`) reached by name: global names
  and attribute chains through user modules (``models.Net``), closure cells, default arguments,
  a class's bases, methods, static/class methods, properties and nested classes, ``__wrapped__``;
- constants: global names bound to simple immutable literals (``None``, bool, int, float, complex,
  str, bytes and tuples of those), by ``repr`` -- so ``nn.Dropout(DROPOUT)`` follows ``DROPOUT``;
  the same for closure cells and default values, and the arguments of a ``functools.partial``.

Only *user code* is followed: objects whose module has a file outside the standard library,
site-packages and dist-packages, and is not pytest_privacy itself. Library code (torch, numpy, ...)
is versioned by its package, not here. Not covered: values of globals that are not simple literals
(a list, a dict, an instance of a user class: the class's code is covered, its state is not), data
files read at run time, and environment variables. User code whose source cannot be read (functions
made by ``exec``) enters the digest by name with a marker and is listed in ``unreadable``.

Names are gathered generously (every identifier in a source's syntax tree and its code objects'
``co_names``, resolved in the module's globals): following one name too many only means retraining
after an edit that did not matter; one too few means serving stale models.

The digest is a sha256 of the sorted ``(qualified name, source)`` pairs: the same in every process
(no ids, no memory addresses). Pure standard library: importing this module does not import torch.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import sys
import sysconfig
import textwrap
import types
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CodeIdentity", "code_identity", "is_user_module"]

_UNREADABLE = "<source unavailable>"
_LIBRARY_DIRS = ("site-packages", "dist-packages")
_SHOWN = 4  # names describe() lists before "..."


@dataclass(frozen=True)
class CodeIdentity:
    """The hash of a training function's code and what went into it.

    ``digest``: 16 hex characters. ``root``: the function's qualified name. ``covers``: every
    function and class (the root included) whose source is in the digest, sorted. ``constants``:
    the literal globals (and partial/closure/default values, named ``<owner>.<partial>`` etc.)
    whose ``repr`` is in it. ``unreadable``: user code without readable source, in it by name only.
    """

    digest: str
    root: str
    covers: tuple[str, ...]
    constants: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for a summary: what the cache key covers."""
        others = [name for name in self.covers if name != self.root]
        root = self.root.rsplit(".", 1)[-1] if "<locals>" not in self.root else self.root
        text = f"{root} + {_count(others, 'function/class', 'functions/classes')} of your code"
        if others:
            text += ": " + _listed(others)
        if self.constants:
            text += f"; {_count(self.constants, 'constant', 'constants')}: {_listed(self.constants)}"
        if self.unreadable:
            text += f"; by name only (no source): {_listed(self.unreadable)}"
        return text


def _count(names: Iterable[str], one: str, many: str) -> str:
    n = len(list(names))
    return f"{n} {one if n == 1 else many}"


def _listed(names: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f", ... (+{len(names) - _SHOWN})" if len(names) > _SHOWN else "")


def code_identity(fn: Any) -> CodeIdentity:
    """Hash ``fn`` and the user code it reaches (see the module docstring for what is covered).

    ``fn`` is a function, a class, a bound method, a ``functools.partial`` (its function, and its
    arguments: user callables are followed, literals hashed by ``repr``) or a callable object (named
    by its class; its state is not hashed). Remembered per object for the session: the code a
    running object executes does not change under it, and every cache key of an audit asks again.
    """
    try:
        return _IDENTITIES[fn]
    except (KeyError, TypeError):  # (TypeError: an object that cannot be weakly referenced or hashed)
        pass
    identity = _walk_identity(fn)
    try:
        _IDENTITIES[fn] = identity
    except TypeError:
        pass
    return identity


_IDENTITIES: weakref.WeakKeyDictionary[Any, CodeIdentity] = weakref.WeakKeyDictionary()


def _walk_identity(fn: Any) -> CodeIdentity:
    walk = _Walk()
    root = walk.root(fn)
    walk.run()
    pairs = sorted(walk.pairs)
    h = hashlib.sha256(b"pytest-privacy-code/1\0")
    for name, source in pairs:
        h.update(name.encode() + b"\0" + source.encode() + b"\0\0")
    return CodeIdentity(
        digest=h.hexdigest()[:16],
        root=root,
        covers=tuple(sorted(walk.covers)),
        constants=tuple(sorted(walk.constants)),
        unreadable=tuple(sorted(walk.unreadable)),
    )


# ---------------------------------------------------------------------------------------- user code


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    return tuple(sorted({Path(p).resolve() for p in roots}))


@functools.lru_cache(maxsize=4096)
def _user_file(file: str) -> bool:
    path = Path(file).resolve()
    if not path.exists() or any(part in _LIBRARY_DIRS for part in path.parts):
        return False
    return not any(path.is_relative_to(root) for root in _library_roots())


def is_user_module(module: types.ModuleType | str | None) -> bool:
    """Whether a module (or a module's name) is user code: it has a file outside the standard
    library, site-packages and dist-packages, and it is not pytest_privacy."""
    if isinstance(module, str):
        module = sys.modules.get(module)
    if not isinstance(module, types.ModuleType):
        return False
    name = module.__name__
    if name == "pytest_privacy" or name.startswith("pytest_privacy."):
        return False
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and _user_file(file)


def _module_of(obj: Any) -> types.ModuleType | None:
    name = getattr(obj, "__module__", None)
    return sys.modules.get(name) if isinstance(name, str) else None


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True
    if type(value) is tuple:
        return all(_is_literal(v) for v in value)
    return False


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', None) or type(obj).__qualname__}"


def _source(obj: Any) -> str | None:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return None


def _code_names(code: types.CodeType) -> Iterator[str]:
    """The global and attribute names a code object and the code nested in it use."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _syntax_names(source: str) -> set[str]:
    """Every identifier in ``source`` (decorators, defaults, annotations and class bodies too, which
    the code objects of a function or a class's methods do not show)."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:  # e.g. a lambda's line cut out of a larger expression
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
    return names


# -------------------------------------------------------------------------------------------- walk


class _Walk:
    """A breadth-first visit of user code from one root, with a seen-set (cycles terminate)."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()
        self.covers: set[str] = set()
        self.constants: set[str] = set()
        self.unreadable: set[str] = set()
        self._seen: dict[int, Any] = {}  # id -> object, kept alive so an id is never reused
        self._queue: list[Any] = []

    # The root is hashed even when it is not user code (its references are followed only into user code).
    def root(self, fn: Any) -> str:
        if isinstance(fn, functools.partial):
            name = f"{_qualname(fn.func)}.<partial>"
            self._partial(fn, name)
            self._push(fn.func, force=True)
            return _qualname(fn.func)
        if isinstance(fn, types.MethodType):
            self._push(fn.__func__, force=True)
            self._push(fn.__self__ if isinstance(fn.__self__, type) else type(fn.__self__))
            return _qualname(fn.__func__)
        if not isinstance(fn, (types.FunctionType, type)):
            fn = type(fn)  # a callable object: its class
        self._push(fn, force=True)
        return _qualname(fn)

    def run(self) -> None:
        while self._queue:
            obj = self._queue.pop()
            if isinstance(obj, type):
                self._class(obj)
            else:
                self._function(obj)

    # ----------------------------------------------------------------------------------- pushing

    def _push(self, obj: Any, *, force: bool = False) -> None:
        """Queue a function or class (unwrapping methods, partials and descriptors) if it is user code."""
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, types.MethodType):
            self._push(obj.__self__ if isinstance(obj.__self__, type) else type(obj.__self__))
            obj = obj.__func__
        if isinstance(obj, functools.partial):
            if id(obj) not in self._seen:
                self._seen[id(obj)] = obj
                self._partial(obj, f"{_qualname(obj.func)}.<partial>")
                self._push(obj.func)
            return
        wrapped = getattr(obj, "__wrapped__", None) if isinstance(obj, types.FunctionType) else None
        if wrapped is not None:
            self._push(wrapped, force=force)
        if not isinstance(obj, (types.FunctionType, type)) or id(obj) in self._seen:
            return
        if not force and not is_user_module(_module_of(obj)):
            return
        self._seen[id(obj)] = obj
        self._queue.append(obj)

    def _value(self, value: Any, name: str) -> None:
        """A value the code sees (a closure cell, a default, a partial's argument)."""
        if _is_literal(value):
            self._constant(name, value)
        elif isinstance(value, (types.FunctionType, type, types.MethodType, functools.partial, staticmethod, classmethod)):
            self._push(value)
        elif callable(value) and is_user_module(_module_of(type(value))):
            self._push(type(value))

    def _constant(self, name: str, value: Any) -> None:
        self.constants.add(name)
        self.pairs.add((name, repr(value)))

    def _partial(self, p: functools.partial, name: str) -> None:
        for i, arg in enumerate(p.args):
            self._value(arg, f"{name}.args[{i}]")
        for key in sorted(p.keywords):
            self._value(p.keywords[key], f"{name}.{key}")
        self.pairs.add((name, f"{len(p.args)} args, keywords {sorted(p.keywords)}"))

    # ---------------------------------------------------------------------------------- visiting

    def _record(self, obj: Any) -> str | None:
        name = _qualname(obj)
        source = _source(obj)
        if source is None:
            self.unreadable.add(name)
            self.pairs.add((name, _UNREADABLE))
        else:
            self.covers.add(name)
            self.pairs.add((name, source))
        return source

    def _function(self, fn: types.FunctionType) -> None:
        source = self._record(fn)
        names = set(_code_names(fn.__code__)) | (_syntax_names(source) if source else set())
        self._names(names, fn.__globals__)
        owner = _qualname(fn)
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self._value(value, f"{owner}.<closure {var}>")
        for i, value in enumerate(fn.__defaults__ or ()):
            self._value(value, f"{owner}.<default {i}>")
        for key, value in sorted((fn.__kwdefaults__ or {}).items()):
            self._value(value, f"{owner}.<default {key}>")

    def _class(self, cls: type) -> None:
        source = self._record(cls)
        names = _syntax_names(source) if source else set()
        for base in cls.__bases__:
            self._push(base)
        prefix = f"{cls.__qualname__}."
        for attr in list(vars(cls).values()):
            funcs = []
            if isinstance(attr, (staticmethod, classmethod)):
                funcs = [attr.__func__]
            elif isinstance(attr, property):
                funcs = [f for f in (attr.fget, attr.fset, attr.fdel) if f is not None]
            elif isinstance(attr, types.FunctionType):
                funcs = [attr]
            elif isinstance(attr, (type, functools.partial)):
                self._push(attr)
            for f in funcs:
                if isinstance(f, types.FunctionType) and f.__qualname__.startswith(prefix) and _module_of(f) is _module_of(cls):
                    names.update(_code_names(f.__code__))  # its source is the class's
                else:
                    self._push(f)
        module = _module_of(cls)
        if module is not None:
            self._names(names, vars(module))

    def _names(self, names: set[str], namespace: dict[str, Any]) -> None:
        """Follow ``names`` in a module's globals, and through the user modules they reach."""
        module_name = namespace.get("__name__")
        if not is_user_module(module_name if isinstance(module_name, str) else None):
            module_name = None  # a library root's globals: follow its user code, hash no constants
        modules: dict[str, types.ModuleType] = {}
        for name in sorted(names):
            if name not in namespace:
                continue
            value = namespace[name]
            if isinstance(value, types.ModuleType):
                if is_user_module(value):
                    modules[value.__name__] = value
            elif module_name and _is_literal(value):
                self._constant(f"{module_name}.{name}", value)
            else:
                self._value_global(value)
        # Attribute chains through user modules (``models.Net``, ``pkg.sub.CONST``), to a fixpoint.
        done: set[str] = set()
        while set(modules) - done:
            for mod_name in sorted(set(modules) - done):
                done.add(mod_name)
                space = vars(modules[mod_name])
                for name in sorted(names):
                    if name not in space:
                        continue
                    value = space[name]
                    if isinstance(value, types.ModuleType):
                        if is_user_module(value):
                            modules.setdefault(value.__name__, value)
                    elif _is_literal(value):
                        self._constant(f"{mod_name}.{name}", value)
                    else:
                        self._value_global(value)

    def _value_global(self, value: Any) -> None:
        if isinstance(value, (types.FunctionType, type, types.MethodType, functools.partial)):
            self._push(value)
        elif is_user_module(_module_of(type(value))):
            self._push(type(value))  # an instance of a user class: its class's code (not its state)
