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
made by ``exec``) enters the digest with a fingerprint of its compiled code (bytecode, constants and
names, recursively), so an edit still changes the key, and is listed in ``unreadable``.

Every object is resolved through the module it was defined in, found from the object itself (a
function's ``__globals__``, the functions in a class's body), never by its module's *name*: two
``conftest.py`` files (``tests/`` and ``tests/privacy/``) are both named ``conftest``, and
``sys.modules["conftest"]`` is whichever pytest imported last.

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
import linecache
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


def is_user_module(module: Any) -> bool:
    """Whether a module (or a module's name) is user code: it has a file outside the standard
    library, site-packages and dist-packages, and it is not pytest_privacy."""
    if isinstance(module, str):
        module = sys.modules.get(module)
    if not isinstance(module, (types.ModuleType, _Namespace)):
        return False
    name = module.__name__ or ""
    if name == "pytest_privacy" or name.startswith("pytest_privacy."):
        return False
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and _user_file(file)


def _own_functions(cls: type) -> list[types.FunctionType]:
    """The functions written in ``cls``'s body (methods, static and class methods, properties)."""
    found = []
    for attr in vars(cls).values():
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        funcs = [attr.fget, attr.fset, attr.fdel] if isinstance(attr, property) else [attr]
        found += [
            f for f in funcs
            if isinstance(f, types.FunctionType) and f.__qualname__.startswith(cls.__qualname__ + ".")
        ]
    return found


def _holds(module: types.ModuleType, obj: Any) -> bool:
    """Whether ``module`` is where ``obj`` lives: its qualified name leads from the module to it."""
    target: Any = module
    for part in getattr(obj, "__qualname__", "<?>").split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is obj


class _Namespace(types.SimpleNamespace):
    """A module's globals seen as a module (``__name__``, ``__file__`` and ``vars``)."""


def _module_of(obj: Any) -> Any:
    """The module ``obj`` was defined in, from the object itself: a function's ``__globals__``, the
    globals of the functions in a class's body; by module name only when that module holds this very
    object (two conftests share the name ``conftest``). None when it cannot be told."""
    if isinstance(obj, types.FunctionType):
        return _as_module(obj.__globals__)
    if isinstance(obj, type):
        for f in _own_functions(obj):
            return _as_module(f.__globals__)
    name = getattr(obj, "__module__", None)
    module = sys.modules.get(name) if isinstance(name, str) else None
    if module is None or (isinstance(obj, type) and not _holds(module, obj)):
        return None
    return module


def _as_module(namespace: dict[str, Any]) -> Any:
    module = sys.modules.get(namespace.get("__name__", ""))
    if module is not None and vars(module) is namespace:
        return module
    ns = _Namespace(__name__=namespace.get("__name__"), __file__=namespace.get("__file__"))
    ns.__dict__["_globals"] = namespace
    return ns


def _same_module(a: Any, b: Any) -> bool:
    ma, mb = _module_of(a), _module_of(b)
    return ma is not None and mb is not None and _globals(ma) is _globals(mb)


def _globals(module: Any) -> dict[str, Any]:
    return module.__dict__["_globals"] if isinstance(module, _Namespace) else vars(module)


def _code_fingerprint(obj: Any) -> str:
    """A hash of what ``obj`` runs when its source cannot be read: the compiled code of a function
    (or of a class's functions, and its literal attributes), recursively with nested code."""
    h = hashlib.sha256()

    def code(c: types.CodeType) -> None:
        h.update(c.co_code)
        h.update(repr(c.co_names).encode() + repr(c.co_varnames).encode())
        for const in c.co_consts:
            code(const) if isinstance(const, types.CodeType) else h.update(repr(const).encode())

    if isinstance(obj, type):
        for name, attr in sorted(vars(obj).items()):
            h.update(name.encode())
            if _is_literal(attr):
                h.update(repr(attr).encode())
        for f in sorted(_own_functions(obj), key=lambda f: f.__qualname__):
            code(f.__code__)
    elif isinstance(obj, types.FunctionType):
        code(obj.__code__)
    return h.hexdigest()[:16]


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True
    if type(value) is tuple:
        return all(_is_literal(v) for v in value)
    return False


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', None) or type(obj).__qualname__}"


def _source(obj: Any, module: Any = None) -> str | None:
    if isinstance(obj, type):
        return _class_source(obj, module)
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return None


def _class_source(cls: type, module: Any = None) -> str | None:
    """A class's source, from the file it was defined in (the file of a function in its body, or of
    ``module``, the module it was found in, or of a module that holds it), never from whichever
    module bears its module's name."""
    own = _own_functions(cls)
    module = module if module is not None else _module_of(cls)
    file = own[0].__code__.co_filename if own else getattr(module, "__file__", None)
    if not isinstance(file, str):
        return None
    lines = linecache.getlines(file)
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return None
    line = own[0].__code__.co_firstlineno if own else None
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                qualname = prefix + child.name
                if qualname == cls.__qualname__:
                    found.append(child)
                visit(child, qualname + ".")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, prefix + child.name + ".<locals>.")
            else:
                visit(child, prefix)

    visit(tree, "")
    if line is not None:
        found = [n for n in found if n.lineno <= line <= (n.end_lineno or n.lineno)]
    if len(found) != 1:
        return None
    node = found[0]
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return "".join(lines[start - 1 : node.end_lineno])


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
        # Where an object was found under its own name: its module, when the object cannot say (a
        # class without functions in its body, whose module name may belong to another conftest).
        self._homes: dict[int, dict[str, Any]] = {}

    def _home(self, obj: Any) -> Any:
        found = self._homes.get(id(obj))
        return _as_module(found) if found is not None and _module_of(obj) is None else _module_of(obj)

    def _note_home(self, value: Any, namespace: dict[str, Any]) -> None:
        if not isinstance(value, type) or namespace.get("__name__") != value.__module__:
            return
        target: Any = namespace
        for part in value.__qualname__.split("."):
            target = target.get(part) if isinstance(target, dict) else getattr(target, part, None)
            if target is None:
                return
        if target is value:
            self._homes[id(value)] = namespace

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
        if not force and not is_user_module(self._home(obj)):
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
        source = _source(obj, self._home(obj))
        if source is None:
            self.unreadable.add(name)
            self.pairs.add((name, f"{_UNREADABLE} {_code_fingerprint(obj)}"))
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
                if isinstance(f, types.FunctionType) and f.__qualname__.startswith(prefix) and _same_module(f, cls):
                    names.update(_code_names(f.__code__))  # its source is the class's
                else:
                    self._push(f)
        module = self._home(cls)
        if module is not None:
            self._names(names, _globals(module))

    def _names(self, names: set[str], namespace: dict[str, Any]) -> None:
        """Follow ``names`` in a module's globals, and through the user modules they reach."""
        module_name = namespace.get("__name__")
        if not is_user_module(_as_module(namespace)):
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
                self._note_home(value, namespace)
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
                        self._note_home(value, space)
                        self._value_global(value)

    def _value_global(self, value: Any) -> None:
        if isinstance(value, (types.FunctionType, type, types.MethodType, functools.partial)):
            self._push(value)
        elif is_user_module(_module_of(type(value))):
            self._push(type(value))  # an instance of a user class: its class's code (not its state)
