"""hybridvision.common.run.rundir: the one loop that picks and locks a run directory."""

import json

import pytest

from hybridvision.common.cli import UserError
from hybridvision.common.config import TrainConfig
from hybridvision.common.run.rundir import MARKER, claim_run_dir, resolve_run_dir


def _started(path, cfg):
    """A run directory that a run of `cfg` started in (the suite's marker, its config.json), unfinished."""
    path.mkdir(parents=True)
    (path / MARKER).write_text("")
    (path / "config.json").write_text(json.dumps(cfg.to_dict()))
    return path


def _contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("files", [
    {"notes.txt": "my notes"},
    {"history.csv": "epoch,loss\n0,1.5\n"},
    {"config.json": '{"epochs": 3}'},
    {"config.json": "{}", "history.csv": "epoch,loss\n0,1.5\n", "notes.txt": ""},
])
def test_a_folder_of_someone_elses_files_is_refused_untouched(files, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    before = _contents(folder)
    for claim in (claim_run_dir, resolve_run_dir):
        with pytest.raises(UserError, match=rf"^run directory {folder} holds .*: it is not the suite's, so nothing in "
                                            "it is touched; pass a new or empty --run-dir$") as info:
            claim("toy", TrainConfig(run_dir=str(folder)), root=tmp_path)
        assert "\n" not in str(info.value)
        assert _contents(folder) == before, "no file written, no run.lock left"


def test_an_earlier_versions_run_dir_without_the_marker_is_still_the_suites(tmp_path):
    cfg = TrainConfig(epochs=2)
    earlier = tmp_path / "toy" / "20250101-000000"
    earlier.mkdir(parents=True)
    for name, text in {"config.json": json.dumps(cfg.to_dict()), "config.yaml": "", "run.log": "",
                       "history.csv": "epoch,loss\n0,1.5\n", "run.lock": ""}.items():
        (earlier / name).write_text(text)
    path, lock = claim_run_dir("toy", cfg, root=tmp_path)  # the automatic resume finds it
    assert path == earlier and (earlier / MARKER).exists()
    lock.release()
    empty = tmp_path / "empty"
    empty.mkdir()
    path, lock = claim_run_dir("toy", TrainConfig(run_dir=str(empty)), root=tmp_path)
    assert (empty / MARKER).exists()
    lock.release()
    foreign = _started(tmp_path / "toy" / "20260101-000000", cfg)
    (foreign / MARKER).unlink()
    (foreign / "notes.txt").write_text("")
    path, lock = claim_run_dir("toy", cfg, root=tmp_path)
    assert path == earlier, "the automatic resume skips a folder that is not the suite's"
    lock.release()


def test_claim_resumes_the_newest_unfinished_run_not_in_use(tmp_path):
    cfg = TrainConfig(epochs=2)
    older = _started(tmp_path / "toy" / "20260101-000000", cfg)
    newer = _started(tmp_path / "toy" / "20260102-000000", cfg)
    _started(tmp_path / "toy" / "20260103-000000", TrainConfig(epochs=3))  # other settings
    finished = _started(tmp_path / "toy" / "20260104-000000", cfg)
    (finished / "metrics.json").write_text("{}")
    first, first_lock = claim_run_dir("toy", cfg, root=tmp_path)
    assert first == newer
    second, second_lock = claim_run_dir("toy", cfg, root=tmp_path)
    assert second == older, "a folder held by another Run is skipped"
    # resolve_run_dir walks the same loop: both are held, so it makes a new folder.
    third = resolve_run_dir("toy", cfg, root=tmp_path)
    assert third.parent == tmp_path / "toy" and third not in (older, newer, finished) and third.is_dir()
    first_lock.release()
    assert resolve_run_dir("toy", cfg, root=tmp_path) == newer
    second_lock.release()


def test_new_folders_are_created_when_claimed_so_two_callers_never_share_one(tmp_path):
    cfg = TrainConfig()
    a, lock_a = claim_run_dir("toy", cfg, root=tmp_path)
    b, lock_b = claim_run_dir("toy", cfg, root=tmp_path)
    assert a != b and a.is_dir() and b.is_dir()
    assert (a / "run.lock").read_text().strip().isdigit()
    lock_a.release()
    lock_b.release()
