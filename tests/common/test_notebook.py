"""hybridvision.common.notebook: the notebooks' shared cells (data and output location, Drive in Colab, app flags)."""

from pathlib import Path

import pytest

from hybridvision.common import notebook


def test_resolve_data_demo_default(monkeypatch, tmp_path, capsys):
    import hybridvision.common.data.demo

    asked = []

    def fake_demo_root(name):
        asked.append(name)
        return tmp_path / name

    monkeypatch.setattr(hybridvision.common.data.demo, "demo_root", fake_demo_root)
    data_dir, data_args, run_dir = notebook.resolve_data(None, "celeba", "attractiveness")
    assert asked == ["celeba"]
    assert data_dir == tmp_path / "celeba"
    assert data_args == []
    assert run_dir.parent == Path("runs") / "attractiveness"
    assert run_dir.name.startswith("notebook-")
    out = capsys.readouterr().out
    assert "SYNTHETIC demo data" in out and "run directory" in out


def test_resolve_data_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="DATA_DIR") as error:
        notebook.resolve_data(str(missing), "celeba", "attractiveness")
    assert str(missing) in str(error.value) and "first code cell" in str(error.value)


def test_resolve_data_existing_path(tmp_path, capsys):
    data_dir, data_args, run_dir = notebook.resolve_data(str(tmp_path), "voc", "patch_training")
    assert data_dir == tmp_path
    assert data_args == ["--data-dir", str(tmp_path)]
    assert run_dir.parent == Path("runs") / "patch_training"
    assert "SYNTHETIC" not in capsys.readouterr().out


def test_import_is_cheap():
    import subprocess
    import sys

    code = (
        "import sys, hybridvision.common.notebook; "
        "heavy = [m for m in ('keras', 'tensorflow', 'matplotlib', 'pandas', 'IPython') if m in sys.modules]; "
        "print(heavy)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def fake_colab(monkeypatch, mounted):
    """Puts a stand-in `google.colab` (with `drive.mount` recording its argument) where Colab has the real one."""
    import importlib.machinery
    import sys
    import types

    google = types.ModuleType("google")
    google.__spec__ = importlib.machinery.ModuleSpec("google", None, is_package=True)
    google.__path__ = []
    colab = types.ModuleType("google.colab")
    colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None, is_package=True)
    colab.__path__ = []

    def mount(where):
        mounted.append(where)
        Path(where, "MyDrive").mkdir(parents=True, exist_ok=True)

    colab.drive = types.SimpleNamespace(mount=mount)
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_use_output_dir_none_stays(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert notebook.use_output_dir(None) == tmp_path
    assert Path.cwd() == tmp_path


def test_use_output_dir_local_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "kept" / "hybridvision"
    assert notebook.use_output_dir(str(out)) == out
    assert Path.cwd() == out and out.is_dir()
    assert "runs/ and saved_models/ go under" in capsys.readouterr().out


def test_drive_path_outside_colab_is_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(notebook, "in_colab", lambda: False)
    drive = tmp_path / "content" / "drive"
    monkeypatch.setattr(notebook, "DRIVE", str(drive))
    with pytest.raises(ValueError, match="OUTPUT_DIR .* only Colab mounts"):
        notebook.use_output_dir(str(drive / "MyDrive" / "hybridvision"))
    assert Path.cwd() == tmp_path
    drive.mkdir(parents=True)  # a /content/drive there already (e.g. mounted some other way) is used as it is
    assert notebook.use_output_dir(str(drive / "MyDrive" / "hybridvision")) == drive / "MyDrive" / "hybridvision"
    assert not notebook.mount_drive(tmp_path / "elsewhere")  # not on Drive: nothing to mount


def test_colab_mounts_drive_for_output_and_data(monkeypatch, tmp_path):
    mounted = []
    fake_colab(monkeypatch, mounted)
    assert notebook.in_colab()
    drive = tmp_path / "content" / "drive"
    monkeypatch.setattr(notebook, "DRIVE", str(drive))
    monkeypatch.chdir(tmp_path)
    data = drive / "MyDrive" / "celeba"
    output = drive / "MyDrive" / "hybridvision"
    data.mkdir(parents=True)
    data_dir, data_args, run_dir = notebook.resolve_data(str(data), "celeba", "attractiveness", str(output))
    assert mounted == [str(drive), str(drive)]  # once for DATA_DIR, once for OUTPUT_DIR
    assert data_dir == data and data_args == ["--data-dir", str(data)]
    assert Path.cwd() == output  # runs/ and saved_models/ land on Drive
    assert (Path.cwd() / run_dir).parent == output / "runs" / "attractiveness"


def test_relative_data_dir_survives_the_move(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    data_dir, data_args, _ = notebook.resolve_data("data", "voc", "patch_training", str(tmp_path / "out"))
    assert data_dir == tmp_path / "data" and data_args == ["--data-dir", str(tmp_path / "data")]
    assert Path.cwd() == tmp_path / "out"


def test_app_flags():
    assert notebook.app_flags(model="hybrid", weights=None, covariates=["Male", "Young"], epochs=2,
                              cache=True, augment=False) == [
        "--model", "hybrid", "--covariates", "Male,Young", "--epochs", "2", "--cache", "--no-augment"]


def test_app_config_shows_automatic_values(capsys):
    from hybridvision.apps.attractiveness.config import AttractivenessConfig

    argv = notebook.app_flags(model="baseline", backbone="small", weights=None)
    cfg = notebook.app_config(AttractivenessConfig, argv, show=("model", "weights", "image_size"))
    assert (cfg.model, cfg.weights, cfg.image_size) == ("baseline", "none", 128)
    out = capsys.readouterr().out
    assert "weights: none  (automatic)" in out and "model: baseline\n" in out
