"""The package installs as one import name, `hybridvision`, and works beside a user's own `apps/` and `common/`.

A wheel is built from this checkout (not an editable install) and unpacked
into a folder of its own; Python then runs in a research-repository-like
folder that holds its own `apps`, `common` and `data_prep` packages.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


# setuptools builds in the source tree (build/, *.egg-info) and reuses what an earlier build left there:
# build from a copy, so the wheel holds what the checkout holds now and the checkout stays clean.
_NOT_SOURCES = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", ".cache", "runs", "site",
                                      "saved_models", "__pycache__", ".pytest_cache", ".ruff_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source, out = tmp_path_factory.mktemp("source") / "hybridvision", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("hybridvision-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


def _run(code: str, cwd: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True)


def test_the_wheel_holds_one_top_level_package_and_the_command(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"hybridvision"}
    for folder in ("common", "apps", "data_prep"):
        assert f"hybridvision/{folder}/__init__.py" in names
    assert "hybridvision/common/layers/hybrid_conv2d.py" in names
    assert not [n for n in names if n.startswith(("hybridvision/tests/", "hybridvision/benchmarks/",
                                                  "hybridvision/notebooks/"))]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "hybridvision = hybridvision.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_import_works_beside_a_users_own_apps_and_common(installed, tmp_path):
    for package in ("apps", "common", "data_prep"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("MINE = True\n")
    saved = tmp_path / "model.keras"
    proc = _run(f"""
        import sys
        import hybridvision
        assert "keras" not in sys.modules, "import hybridvision alone must stay light"
        from hybridvision.layers import HybridConv2D
        import hybridvision.common, common
        assert hybridvision.__file__.startswith({str(installed)!r}), hybridvision.__file__
        assert hybridvision.common.__file__.startswith({str(installed)!r}), hybridvision.common.__file__
        assert common.MINE  # the user's own package is untouched
        import keras, numpy as np
        images, covariates = keras.Input((8, 8, 3)), keras.Input((2,))
        x = HybridConv2D(4, 3, num_covariates=2, padding="same")([images, covariates])
        model = keras.Model([images, covariates], keras.layers.GlobalAveragePooling2D()(x))
        model.save({str(saved)!r})
        rng = np.random.default_rng(0)
        x, c = rng.random((2, 8, 8, 3)), rng.random((2, 2))
        np.savez({str(tmp_path / "io.npz")!r}, x=x, c=c, y=model.predict([x, c], verbose=0))
        print("saved")
    """, tmp_path, installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # A fresh process: `import keras` then `import hybridvision` registers the custom objects.
    proc = _run(f"""
        import keras, numpy as np
        import hybridvision
        model = keras.saving.load_model({str(saved)!r})
        data = np.load({str(tmp_path / "io.npz")!r})
        assert np.array_equal(model.predict([data["x"], data["c"]], verbose=0), data["y"])
        print("reloaded", type(model.layers[2]).__module__)
    """, tmp_path, installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reloaded hybridvision.common.layers.hybrid_conv2d" in proc.stdout
