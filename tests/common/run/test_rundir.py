"""hybridvision.common.run.rundir: the one loop that picks and locks a run directory."""

import json

from hybridvision.common.config import TrainConfig
from hybridvision.common.run.rundir import claim_run_dir, resolve_run_dir


def _started(path, cfg):
    """A run directory that a run of `cfg` started in (its config.json), unfinished."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg.to_dict()))
    return path


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
