"""hybridvision.common.repeat (settings x seeds, resumed, refused, summarised) and hybridvision.common.tables (CSV + Markdown)."""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hybridvision.common import repeat as repeat_module
from hybridvision.common.cli import UserError
from hybridvision.common.config import TrainConfig
from hybridvision.common.repeat import interval, repeat, run_seeds, summarise, summary_of
from hybridvision.common.run.atomic import atomic_write_text as real_atomic_write_text
from hybridvision.common.tables import markdown_table, write_table

T_975_2 = 4.302653  # t(0.975, 2 degrees of freedom), from a table


def test_interval_matches_a_hand_computation():
    mean, std, half = interval([0.70, 0.72, 0.74])
    assert mean == pytest.approx(0.72) and std == pytest.approx(0.02)
    assert half == pytest.approx(T_975_2 * 0.02 / np.sqrt(3), rel=1e-5)
    assert np.isnan(interval([0.7])[2]) and interval([0.7])[:2] == (0.7, 0.0)
    assert summary_of([0.7]) == {"mean": 0.7, "std": 0.0, "ci95_low": None, "ci95_high": None}


def test_summarise_mean_and_interval_per_setting():
    values = {"a": {0: {"acc": 0.70, "loss": 1.0}, 1: {"acc": 0.72, "loss": 2.0}, 2: {"acc": 0.74, "loss": 3.0}},
              "b": {0: {"acc": 0.5, "loss": 0.0}}, "c": {}}
    rows = summarise(values, key="model")
    assert [r["model"] for r in rows] == ["a", "b"] and [r["n"] for r in rows] == [3, 1]
    a = rows[0]
    half = T_975_2 * 0.02 / np.sqrt(3)  # 0.04968
    assert a["acc_mean"] == pytest.approx(0.72) and a["acc_std"] == pytest.approx(0.02)
    assert a["acc_ci95_low"] == pytest.approx(0.72 - half, rel=1e-5)
    assert a["acc_ci95_high"] == pytest.approx(0.72 + half, rel=1e-5)
    assert a["loss_mean"] == pytest.approx(2.0) and a["loss_std"] == pytest.approx(1.0)
    assert a["loss_ci95_high"] == pytest.approx(2.0 + T_975_2 / np.sqrt(3), rel=1e-5)
    assert rows[1]["acc_mean"] == 0.5 and rows[1]["acc_ci95_low"] is None


def _configs(tmp_path, epochs=1, seeds=(0, 1)):
    return {name: {seed: TrainConfig(epochs=epochs, learning_rate=lr, seed=seed,
                                     run_dir=str(tmp_path / name / f"seed{seed}")) for seed in seeds}
            for name, lr in (("slow", 0.001), ("fast", 0.01))}


class _FakeTrain:
    """Stands for an app's training: writes config.json when it starts and metrics.json when it ends."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, cfg):
        run_dir = Path(cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
        self.calls.append(run_dir.relative_to(run_dir.parents[1]).as_posix())
        if run_dir.name == self.fail_at:
            raise KeyboardInterrupt("killed")
        metrics = {"test": {"accuracy": cfg.learning_rate * 10 + cfg.seed / 100}}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        return metrics


def test_repeat_runs_seeds_outermost_and_resumes(tmp_path):
    train = _FakeTrain(fail_at="seed1")
    with pytest.raises(KeyboardInterrupt):
        repeat(_configs(tmp_path), train)
    assert train.calls == ["slow/seed0", "fast/seed0", "slow/seed1"]

    seen = []
    train = _FakeTrain()
    results = repeat(_configs(tmp_path), train, on_result=lambda *args: seen.append((args[0], args[1], args[3])))
    # The finished cells are read back, the interrupted one and the rest trained.
    assert train.calls == ["slow/seed1", "fast/seed1"]
    assert [(name, seed, seconds is None) for name, seed, seconds in seen] == [
        ("slow", 0, True), ("fast", 0, True), ("slow", 1, False), ("fast", 1, False)]
    assert list(results) == ["slow", "fast"] and list(results["slow"]) == [0, 1]
    assert results["fast"][1] == {"test": {"accuracy": pytest.approx(0.11)}}

    again = _FakeTrain()
    more = repeat(_configs(tmp_path, seeds=(0, 1, 2)), again)
    assert again.calls == ["slow/seed2", "fast/seed2"], "adding a seed trains only the new cells"
    assert list(more["slow"]) == [0, 1, 2] and more["slow"][1] == results["slow"][1]


def test_repeat_refuses_a_folder_run_with_other_settings(tmp_path):
    repeat(_configs(tmp_path), _FakeTrain())
    train = _FakeTrain()
    with pytest.raises(UserError) as error:
        repeat(_configs(tmp_path, epochs=2), train, fix="pass another --out or delete that folder")
    message = str(error.value)
    assert message == (f"{tmp_path / 'slow' / 'seed0'} was run with other settings (epochs: 1 there, 2 now); "
                       "pass another --out or delete that folder")
    assert train.calls == [], "nothing trains before the check"
    # Not refused: how a run is launched, fields in `ignore`, and check=False.
    quiet = {n: {s: dataclasses.replace(c, quiet=True) for s, c in by.items()} for n, by in _configs(tmp_path).items()}
    repeat(quiet, train)
    repeat(_configs(tmp_path, epochs=2), train, ignore=("epochs",))
    repeat(_configs(tmp_path, epochs=2), train, check=False)
    assert train.calls == []


def test_a_field_added_since_counts_as_its_default(tmp_path):
    repeat(_configs(tmp_path), _FakeTrain())
    saved = tmp_path / "slow" / "seed0" / "config.json"
    old = json.loads(saved.read_text())
    del old["image_size"]  # a run made before the field existed, when it had its default
    saved.write_text(json.dumps(old))
    repeat(_configs(tmp_path), _FakeTrain())
    changed = {n: {s: dataclasses.replace(c, image_size=64) for s, c in by.items()}
               for n, by in _configs(tmp_path).items()}
    with pytest.raises(UserError, match="image_size: 128 there, 64 now"):
        repeat(changed, _FakeTrain())


def test_one_table_writer_csv_and_markdown(tmp_path):
    rows = summarise({"fc": {0: {"test": 0.70}, 1: {"test": 0.72}, 2: {"test": 0.74}}, "cnn": {0: {"test": 0.8}}},
                     key="model")
    rows[0]["note"], rows[1]["note"] = None, "one seed"
    csv_path, md_path = write_table(rows, tmp_path / "out" / "table", title="demo", headers={"n": "rounds"},
                                    notes=["Mean ± std."])
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["model", "n", "test_mean", "test_std", "test_ci95_low", "test_ci95_high", "note"]
    assert float(table[0]["test_mean"]) == pytest.approx(0.72) and table[1]["test_ci95_low"] == ""
    assert md_path.read_text() == (
        "# demo\n\n"
        "| model | rounds | test | test 95% CI | note |\n"
        "|---|---:|---:|---:|---|\n"
        "| fc | 3 | 0.720 ± 0.020 | [0.670, 0.770] | - |\n"
        "| cnn | 1 | 0.800 ± 0.000 | - | one seed |\n"
        "\nMean ± std.\n"
    )
    assert markdown_table([{"k": 1, "s": 1234.4}], formats={"s": "{:.0f}"}, digits=1) == (
        "| k | s |\n|---:|---:|\n| 1 | 1234 |\n")


@dataclasses.dataclass
class _SeedsConfig(TrainConfig):
    seeds: list[int] = dataclasses.field(default_factory=list)


class _FakeSeedTrain:
    """An app's training of one seed for `run_seeds`: val/test metrics, a seed-independent floor and notes."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at, self.fake = [], fail_at, _FakeTrain(fail_at)

    def __call__(self, cfg, export_name):
        assert cfg.seeds == [] and Path(cfg.run_dir).name == f"seed{cfg.seed}"
        self.calls.append((cfg.seed, export_name))
        metrics = self.fake(cfg)
        metrics = {"val": {"accuracy": 0.5 + cfg.seed / 10}, "test": metrics["test"], "floor": {"test": 0.25},
                   "notes": {"exported_model": f"saved_models/{export_name}.keras", "split": "fallback"}}
        (Path(cfg.run_dir) / "metrics.json").write_text(json.dumps(metrics))
        return metrics


def test_run_seeds_summarises_the_seeds_atomically_and_reads_finished_ones_back(tmp_path, monkeypatch):
    cfg = _SeedsConfig(seeds=[0, 1, 2], learning_rate=0.01, run_dir=str(tmp_path / "multi"))
    train = _FakeSeedTrain()
    written = []

    def atomic_write_text(path, text):
        written.append(path.name)
        real_atomic_write_text(path, text)

    monkeypatch.setattr(repeat_module, "atomic_write_text", atomic_write_text)
    metrics = run_seeds("toy", cfg, train, carry=("floor",))
    # Every file through the atomic writer; metrics.json, which marks the run finished, last.
    assert written == ["config.json", "summary.json", "summary.csv", "metrics.json"]
    assert train.calls == [(0, "multi_seed0"), (1, "multi_seed1"), (2, "multi_seed2")]
    root = tmp_path / "multi"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["seeds"] == [0, 1, 2]
    assert summary["runs"][1] == {"seed": 1, "val_accuracy": pytest.approx(0.6), "test_accuracy": pytest.approx(0.11)}
    assert summary["mean"]["test_accuracy"] == pytest.approx(0.11)
    assert summary["std"]["val_accuracy"] == pytest.approx(0.1)
    half = T_975_2 * 0.1 / np.sqrt(3)
    assert summary["ci95_low"]["val_accuracy"] == pytest.approx(0.6 - half, rel=1e-5)
    assert summary["floor"] == {"test": 0.25} and summary["notes"] == {"split": "fallback"}
    with open(root / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["seed"] for r in table] == ["0", "1", "2", "mean", "std", "ci95_low", "ci95_high"]
    assert float(table[3]["test_accuracy"]) == pytest.approx(0.11)
    assert metrics == json.loads((root / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] == pytest.approx(0.6) and metrics["std"]["val"]["accuracy"] == pytest.approx(0.1)
    assert metrics["ci95_high"]["test"]["accuracy"] == pytest.approx(0.11 + T_975_2 * 0.01 / np.sqrt(3), rel=1e-5)
    assert metrics["seeds"] == [0, 1, 2] and metrics["floor"] == {"test": 0.25}
    assert json.loads((root / "config.json").read_text())["seeds"] == [0, 1, 2]
    assert not [p.name for p in root.rglob("*") if ".tmp" in p.name]
    again = _FakeSeedTrain()
    assert run_seeds("toy", cfg, again, carry=("floor",)) == metrics
    assert again.calls == [], "finished seeds are read back, not trained"


def test_run_seeds_resumes_the_unfinished_multi_seed_run_and_refuses_other_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _SeedsConfig(seeds=[0, 1])
    with pytest.raises(KeyboardInterrupt):
        run_seeds("toy", cfg, _FakeSeedTrain(fail_at="seed1"))
    (root,) = (tmp_path / "runs" / "toy").iterdir()
    train = _FakeSeedTrain()
    run_seeds("toy", cfg, train)
    assert train.calls == [(1, f"{root.name}_seed1")], "the same command resumes the interrupted multi-seed run"
    assert (root / "metrics.json").exists()
    other = dataclasses.replace(cfg, run_dir=str(root), epochs=3)
    with pytest.raises(UserError, match=r"seed0 was run with other settings \(epochs: 10 there, 3 now\); pass "
                                        r"another --run-dir or delete that folder"):
        run_seeds("toy", other, _FakeSeedTrain())
