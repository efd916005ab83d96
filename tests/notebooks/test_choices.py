"""Each notebook offers its app's settings with the app's defaults and choices.

The tagged `parameters` cell of every notebook (its jupytext `.py`) is read
with `ast`, never run. Besides the notebook's own parameters (`NOTEBOOK_ONLY`),
every name in it is an app setting: `MODEL` is the app config's field `model`.
Its value must be the field's default, or None where the field's default is
None (the app's automatic value, e.g. the weights by backbone). The cell's
`CHOICES` dict gives the values a setting takes; each must be the field's
`choices`, in the same order (a subset only where a choice cannot run in a
notebook, listed in `SUBSETS` with the reason), and every offered setting whose
field has choices must have its entry.
"""

import ast
import dataclasses
import importlib

import jupytext
import pytest

from tests.notebooks.test_sync import NOTEBOOKS

# Parameters of the notebook itself, not of its app.
NOTEBOOK_ONLY = {"REPO_URL", "QUICK", "DATA_DIR", "OUTPUT_DIR", "CHOICES"}
# notebook -> (its app's train config, the settings it must offer at least).
APPS = {
    "attractiveness": ("hybridvision.apps.attractiveness.config:AttractivenessConfig",
                       {"model", "backbone", "weights", "covariates", "hybrid_positions"}),
    "cross_modal": ("hybridvision.apps.cross_modal.config:CrossModalConfig",
                    {"model", "backbone", "weights", "protocol", "source"}),
    "digit_pairs": ("hybridvision.apps.digit_pairs.config:DigitPairsConfig", {"model"}),
    "orientation_light": ("hybridvision.apps.orientation_light.config:OrientationLightConfig",
                          {"task", "model", "weights"}),
    "patch_training": ("hybridvision.apps.patch_training.config:PatchTrainingConfig",
                       {"backbone", "weights", "switch_epoch"}),
}
# Notebooks without an app (they train nothing through one).
NO_APP = {"hybrid_conv2d"}
# (notebook, setting) -> why the notebook offers only some of the field's choices. None at present.
SUBSETS: dict = {}


def parameters(source_text):
    """The tagged parameters cell of a jupytext percent source, as `{name: literal value}`."""
    notebook = jupytext.reads(source_text, fmt="py:percent")
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    values = {}
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"the parameters cell holds only `NAME = literal` lines, not {ast.unparse(node)!r}")
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def config_class(path):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def problems(values, cls, required=(), subsets=()):
    """What disagrees between a notebook's parameters and its app's config class (empty: nothing).

    `subsets`: the settings whose CHOICES may be a subset of the field's choices."""
    from hybridvision.common.config import field_choices

    fields = {f.name: f for f in dataclasses.fields(cls)}
    found = []
    settings = {name: value for name, value in values.items() if name not in NOTEBOOK_ONLY}
    choices = values.get("CHOICES", {})
    for name, value in settings.items():
        field = fields.get(name.lower())
        if field is None or name != name.upper():
            found.append(f"{name}: no setting {name.lower()!r} in {cls.__name__}")
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if value != default:
            found.append(f"{name} = {value!r}, but the app's default is {default!r}"
                         + (" (None in the notebook only where the app's default is None: automatic)"
                            if value is None else ""))
        allowed = field_choices(cls, field.name)
        if allowed and name not in choices:
            found.append(f"{name}: the app takes {tuple(allowed)}; CHOICES lacks {name!r}")
    for name, offered in choices.items():
        field = fields.get(name.lower())
        allowed = field_choices(cls, name.lower()) if field else None
        if name not in settings or not allowed:
            found.append(f"CHOICES[{name!r}]: {name} is not a setting of the cell with choices in {cls.__name__}")
            continue
        if name.lower() in subsets and set(offered) <= set(allowed):
            continue
        if tuple(offered) != tuple(allowed):
            found.append(f"CHOICES[{name!r}] = {tuple(offered)}, but the app takes {tuple(allowed)}")
    missing = set(required) - {name.lower() for name in settings}
    if missing:
        found.append(f"the notebook does not offer {sorted(missing)}")
    return found


def test_every_notebook_is_mapped():
    stems = {p.stem for p in NOTEBOOKS.glob("*.py")}
    assert stems == set(APPS) | NO_APP, "map each notebook to its app's config in APPS (or list it in NO_APP)"


@pytest.mark.parametrize("name", sorted(APPS))
def test_parameters_match_app_config(name):
    path, required = APPS[name]
    values = parameters((NOTEBOOKS / f"{name}.py").read_text())
    subsets = {setting for notebook, setting in SUBSETS if notebook == name}
    found = problems(values, config_class(path), required, subsets)
    assert not found, f"notebooks/{name}.py's parameters cell disagrees with {path}:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("name", sorted(NO_APP))
def test_notebook_without_app_has_no_settings(name):
    values = parameters((NOTEBOOKS / f"{name}.py").read_text())
    assert set(values) <= NOTEBOOK_ONLY, f"{name}: settings {sorted(set(values) - NOTEBOOK_ONLY)} of no app"


def test_check_catches_a_changed_default_and_choice():
    """The check itself fails where a notebook drifts from its app."""
    source = (NOTEBOOKS / "attractiveness.py").read_text()
    cls = config_class(APPS["attractiveness"][0])
    assert not problems(parameters(source), cls)
    changed = source.replace('MODEL = "hybrid"', 'MODEL = "baseline"')
    assert changed != source
    assert any("MODEL" in p and "default" in p for p in problems(parameters(changed), cls))
    dropped = source.replace('"late_fusion", "film", ', '"late_fusion", ')
    assert dropped != source
    assert any("CHOICES['MODEL']" in p for p in problems(parameters(dropped), cls))
    hard_coded = source.replace("WEIGHTS = None", 'WEIGHTS = "none"')
    assert any("WEIGHTS" in p for p in problems(parameters(hard_coded), cls))


@pytest.mark.parametrize("name", sorted(APPS))
def test_text_says_what_quick_shows(name):
    """Each app notebook says plainly what QUICK = True shows: that the code runs, or a result above chance
    (said only where a QUICK run was seen to score above chance: cross_modal)."""
    text = " ".join(line.lstrip("#").strip() for line in (NOTEBOOKS / f"{name}.py").read_text().splitlines())
    says = ("QUICK = True` only checks that the code runs" in text
            or "QUICK = True` shows a result above chance" in text)
    assert says, f"{name}: say plainly what QUICK shows"
