"""code_identity: a training function's cache identity covers the user code it reaches, and only that."""

from __future__ import annotations

import functools
import importlib.util
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_privacy.engine.code_identity import (
    CodeIdentity,
    code_identity,
    is_user_module,
)

_versions = itertools.count()

MODEL = """
import numpy as np
from torch import nn

DROPOUT = 0.2
WIDTH = 8


def _width():
    return WIDTH * 2


def build_layers():
    return [nn.Linear(4, _width()), nn.ReLU()]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*build_layers(), nn.Dropout(DROPOUT))

    def forward(self, x):
        return self.body(x)


def unrelated():
    return "not used by train"


def train(x, y, *, seed, device):
    np.random.default_rng(seed)
    return Net()
"""


@pytest.fixture
def load(tmp_path, monkeypatch):
    """Import ``source`` from a file of its own under a fixed module name (a new version each call)."""
    loaded: list[str] = []

    def load(source: str, name: str = "user_model_code") -> object:
        directory = tmp_path / f"v{next(_versions)}"
        directory.mkdir()
        path = directory / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        loaded.append(name)
        return module

    return load


def _identity(load, source: str, attr: str = "train", name: str = "user_model_code") -> CodeIdentity:
    return code_identity(getattr(load(source, name), attr))


def test_editing_the_model_class_changes_the_digest_and_the_class_is_covered(load):
    before = _identity(load, MODEL)
    after = _identity(load, MODEL.replace("nn.Dropout(DROPOUT)", "nn.Dropout(DROPOUT), nn.Dropout(0.5)"))
    assert before.digest != after.digest
    assert "user_model_code.Net" in before.covers and "user_model_code.train" in before.covers
    assert before.root == "user_model_code.train"


def test_editing_a_literal_in_the_class_source_changes_the_digest(load):
    source = MODEL.replace("nn.Dropout(DROPOUT)", "nn.Dropout(0.2)")
    assert _identity(load, source).digest != _identity(load, source.replace("nn.Dropout(0.2)", "nn.Dropout(0.5)")).digest


def test_editing_a_helper_two_levels_down_changes_the_digest(load):
    before = _identity(load, MODEL)
    after = _identity(load, MODEL.replace("return WIDTH * 2", "return WIDTH * 3"))
    assert before.digest != after.digest
    assert {"user_model_code.build_layers", "user_model_code._width"} <= set(before.covers)


def test_editing_a_module_constant_the_class_uses_changes_the_digest(load):
    before = _identity(load, MODEL)
    after = _identity(load, MODEL.replace("DROPOUT = 0.2", "DROPOUT = 0.5"))
    assert before.digest != after.digest
    assert "user_model_code.DROPOUT" in before.constants and "user_model_code.WIDTH" in before.constants
    assert _identity(load, MODEL.replace("WIDTH = 8", "WIDTH = 9")).digest != before.digest


def test_editing_unrelated_code_in_the_same_module_keeps_the_digest(load):
    before = _identity(load, MODEL)
    after = _identity(load, MODEL.replace('"not used by train"', '"edited, still unused"') + "\nOTHER = 3\n")
    assert before.digest == after.digest and before.covers == after.covers
    assert "user_model_code.unrelated" not in before.covers


def test_library_code_is_never_covered(load):
    identity = _identity(load, MODEL)
    assert all(name.startswith("user_model_code.") for name in identity.covers + identity.constants)
    assert not [n for n in identity.covers if n.startswith(("torch", "numpy", "builtins", "pytest_privacy"))]
    import numpy as np
    import torch.nn

    assert not is_user_module(torch.nn) and not is_user_module(np) and not is_user_module(functools)
    assert not is_user_module(sys.modules["pytest_privacy.engine.code_identity"])


def test_code_reached_through_another_user_module(load, tmp_path, monkeypatch):
    """``import helpers_ci as h`` then ``h.scale()`` (and ``h.FACTOR``): an attribute chain into user code."""
    helpers = """
        FACTOR = 2

        def scale(v):
            return v * FACTOR
    """
    main = """
        import helpers_ci as h

        def train(x, y, *, seed, device):
            return h.scale(seed)
    """
    load(helpers, "helpers_ci")
    before = _identity(load, main, name="main_ci")
    assert "helpers_ci.scale" in before.covers and "helpers_ci.FACTOR" in before.constants
    load(helpers.replace("FACTOR = 2", "FACTOR = 3"), "helpers_ci")
    assert _identity(load, main, name="main_ci").digest != before.digest
    load(helpers.replace("v * FACTOR", "v * FACTOR + 1"), "helpers_ci")
    assert _identity(load, main, name="main_ci").digest != before.digest
    load(helpers, "helpers_ci")
    assert _identity(load, main, name="main_ci").digest == before.digest


def test_cycles_terminate(load):
    source = """
        def even(n):
            return n == 0 or odd(n - 1)

        def odd(n):
            return n != 0 and even(n - 1)

        class Tree:
            def children(self):
                return [Tree(), Tree.make()]

            @classmethod
            def make(cls):
                return Tree()

        def train(x, y, *, seed, device):
            return even(seed), Tree()
    """
    identity = _identity(load, source, name="cycles_ci")
    assert {"cycles_ci.even", "cycles_ci.odd", "cycles_ci.Tree", "cycles_ci.train"} == set(identity.covers)


def test_the_digest_is_the_same_in_a_fresh_process(load, tmp_path):
    module = load(MODEL)
    here = code_identity(module.train)
    script = textwrap.dedent(f"""
        import importlib.util, sys
        from pytest_privacy.engine.code_identity import code_identity
        spec = importlib.util.spec_from_file_location("user_model_code", {module.__file__!r})
        module = importlib.util.module_from_spec(spec)
        sys.modules["user_model_code"] = module
        spec.loader.exec_module(module)
        identity = code_identity(module.train)
        print(identity.digest, ",".join(identity.covers), ",".join(identity.constants))
    """)
    for hash_seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "PYTHONHASHSEED": hash_seed}).stdout.split()
        assert out == [here.digest, ",".join(here.covers), ",".join(here.constants)]


def test_partials_and_callable_objects(load):
    source = """
        import functools

        EPOCHS = 3

        class Net:
            def __init__(self, width):
                self.width = width

        def fit(x, y, *, seed, device, epochs, model=Net):
            return model(epochs)

        class Trainer:
            def __call__(self, x, y, *, seed, device):
                return Net(EPOCHS)

        trainer = Trainer()
        partial3 = functools.partial(fit, epochs=3)
        partial5 = functools.partial(fit, epochs=5)
    """
    module = load(source, "callables_ci")
    p3, p5 = code_identity(module.partial3), code_identity(module.partial5)
    assert p3.digest != p5.digest and "callables_ci.Net" in p3.covers and "callables_ci.fit" in p3.covers
    assert p3.root == "callables_ci.fit" and "callables_ci.fit.<partial>.epochs" in p3.constants
    obj = code_identity(module.trainer)
    assert obj.root == "callables_ci.Trainer" and {"callables_ci.Trainer", "callables_ci.Net"} <= set(obj.covers)
    assert "callables_ci.EPOCHS" in obj.constants
    method = code_identity(module.trainer.__call__)  # a bound method: its function and its object's class
    assert method.root == "callables_ci.Trainer.__call__" and {"callables_ci.Trainer", "callables_ci.Net"} <= set(method.covers)
    edited = load(source.replace("return Net(EPOCHS)", "return Net(EPOCHS + 1)"), "callables_ci")
    assert code_identity(edited.trainer).digest != obj.digest


def test_closures_decorators_and_unreadable_code(load):
    source = """
        import functools

        def _scaled(v):
            return v * 2

        def make_train(width):
            def train(x, y, *, seed, device):
                return _scaled(width)
            return train

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*a, **k):
                return fn(*a, **k)
            return wrapper

        @logged
        def decorated(x, y, *, seed, device):
            return _scaled(seed)

        namespace = {}
        exec("def made(x, y, *, seed, device):\\n    return _scaled(seed)\\n", globals(), namespace)
        made = namespace["made"]
        made.__module__ = __name__
    """
    module = load(source, "closures_ci")
    four, eight = code_identity(module.make_train(4)), code_identity(module.make_train(8))
    assert four.digest != eight.digest and "closures_ci._scaled" in four.covers
    decorated = code_identity(module.decorated)
    assert "closures_ci._scaled" in decorated.covers
    made = code_identity(module.made)
    assert made.unreadable == ("closures_ci.made",) and "closures_ci._scaled" in made.covers
    assert "by name only" in made.describe()


def test_describe_says_what_the_key_covers(load):
    text = _identity(load, MODEL).describe()
    assert text.startswith("train + 3 functions/classes of your code: ")
    assert "user_model_code.Net" in text and "constants: user_model_code.DROPOUT" in text


def _load_conftest(folder: Path, source: str) -> object:
    """Import ``folder/conftest.py`` as pytest does: under the module name ``conftest``, which the
    next conftest imported takes over in ``sys.modules``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "conftest.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location("conftest", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["conftest"] = module
    spec.loader.exec_module(module)
    return module


BAG = """
from torch import nn

MODE = "{mode}"


class BagClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(100, 8, mode=MODE)

    def forward(self, ids):
        return self.bag(ids)


class Plain(nn.Sequential):
    pass


def train(x, y, *, seed, device):
    return BagClassifier(), Plain()
"""


def test_a_second_conftest_does_not_hide_the_first_ones_code(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "conftest", sys.modules.get("conftest"))
    identities = []
    for mode in ("mean", "max"):
        inner = _load_conftest(tmp_path / mode / "privacy", BAG.format(mode=mode))
        _load_conftest(tmp_path / mode, "import pytest\n")  # tests/conftest.py, imported after: owns the name
        identity = code_identity(inner.train)
        assert not identity.unreadable, identity.describe()  # once: 'by name only (no source): conftest.BagClassifier'
        assert {"conftest.BagClassifier", "conftest.Plain"} <= set(identity.covers)
        assert "conftest.MODE" in identity.constants
        identities.append(identity)
    assert identities[0].digest != identities[1].digest  # editing the model changes the key


def test_code_without_readable_source_changes_the_key_when_it_changes():
    namespaces = [{}, {}]
    exec("def train(x, y, *, seed, device):\n    return x * 2\n", namespaces[0])
    exec("def train(x, y, *, seed, device):\n    return x * 3\n", namespaces[1])
    a, b = (code_identity(ns["train"]) for ns in namespaces)
    assert a.unreadable and b.unreadable and a.digest != b.digest
