"""cross_modal --protocol domainbed: the held-out domain reaches neither training nor model selection; cells, resume,
mean ± standard error, the time estimate, one-line errors."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from hybridvision.apps.cross_modal import linear_probe as probe_module
from hybridvision.apps.cross_modal import train as train_module
from hybridvision.apps.cross_modal.config import CrossModalConfig
from hybridvision.apps.cross_modal.data import check_unseen, domainbed_partition, partitions
from hybridvision.common.cli import UserError
from hybridvision.common.data.domains import read_domains
from hybridvision.common.run import Run

SMALL = ["--model", "frozen", "--backbone", "small", "--weights", "none", "--image-size", "16", "--epochs", "1",
         "--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def tiny_domains(tmp_path_factory):
    from hybridvision.common.data.demo import generate

    return generate("domains", tmp_path_factory.mktemp("domains"), scale="tiny")


def test_the_split_keeps_the_held_out_domain_for_the_test_only(tiny_domains):
    table = read_domains(tiny_domains)
    part = domainbed_partition(table, ["sketch"], seed=0)
    sketches = set(table.loc[table["modality"] == "sketch", "path"])
    assert set(part["test"]["path"]) == sketches
    train, val = set(part["train"]["path"]), set(part["val"]["path"])
    assert not (train | val) & sketches and not train & val
    assert train | val == set(table["path"]) - sketches
    # 20% of every (training domain, class) group validates.
    for (modality, label), rows in table[table["modality"] != "sketch"].groupby(["modality", "label"]):
        held = part["val"][(part["val"]["modality"] == modality) & (part["val"]["label"] == label)]
        assert len(held) == round(0.2 * len(rows)), (modality, label)
    assert set(domainbed_partition(table, ["sketch"], seed=1)["val"]["path"]) != val  # the seed draws it


def test_a_test_or_held_out_image_in_train_or_val_is_refused(tiny_domains):
    table = read_domains(tiny_domains)
    part = domainbed_partition(table, ["sketch"], seed=0)
    others = ["cartoon", "photo"]
    check_unseen(part["train"], part["val"], part["test"], others)  # the split as made: no error
    with pytest.raises(ValueError, match="in the val set"):
        check_unseen(part["train"], pd.concat([part["val"], part["test"].iloc[:1]]), part["test"], others)
    with pytest.raises(ValueError, match="in the train set"):  # a held-out image, even when not among the test rows
        check_unseen(pd.concat([part["train"], part["test"].iloc[-1:]]), part["val"], part["test"].iloc[:-1], others)
    with pytest.raises(ValueError, match="in the train set"):  # a test image of a training domain (split protocols)
        check_unseen(part["train"], part["val"], part["train"].iloc[:1], others)


def test_a_leaking_partition_stops_the_run_before_training(tiny_domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = read_domains(tiny_domains)

    def leaking(cfg, table_):
        part = domainbed_partition(table, cfg.test_domains, cfg.seed)
        # A held-out image filed under a training domain: the modality filter lets it through, the check does not.
        return [{**part, "val": pd.concat([part["val"], part["test"].iloc[:1].assign(modality="cartoon")])}]

    fitted = []
    monkeypatch.setattr(train_module, "partitions", leaking)
    monkeypatch.setattr(Run, "fit", lambda *args, **kwargs: fitted.append(args))
    with pytest.raises(ValueError, match="in the val set"):
        train_module.main(["--data-dir", str(tiny_domains), "--protocol", "domainbed", "--test-domains", "photo",
                           "--run-dir", str(tmp_path / "run"), *SMALL])
    assert not fitted


def test_cells_train_without_the_held_out_domain_resume_and_report_mean_and_standard_error(
        tiny_domains, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    table = read_domains(tiny_domains)
    modality_of = dict(zip(table["path"], table["modality"]))
    # Spies: which cell trains, the images whose features train and validate it, what the checkpoint is chosen on.
    cells, features, fits = [], [], []
    train, cached, fit = train_module.train, train_module.cached_features, Run.fit

    def spy_train(cfg, **kwargs):
        cells.append((cfg.test_domains[0], cfg.seed))
        return train(cfg, **kwargs)

    def spy_features(extractor, paths, *args, **kwargs):
        features.append((cells[-1], list(paths)))
        return cached(extractor, paths, *args, **kwargs)

    def spy_fit(self, model, train_data, val_data, **kwargs):
        fits.append((len(val_data[1]), kwargs["monitor"]))
        return fit(self, model, train_data, val_data, **kwargs)

    monkeypatch.setattr(train_module, "train", spy_train)
    monkeypatch.setattr(train_module, "cached_features", spy_features)
    monkeypatch.setattr(Run, "fit", spy_fit)
    args = ["--data-dir", str(tiny_domains), "--protocol", "domainbed", "--test-domains", "photo,sketch",
            "--seeds", "0,1", "--run-dir", str(tmp_path / "run"), *SMALL]
    metrics = train_module.main(args)

    assert "estimated " in capsys.readouterr().out.splitlines()[0]
    assert sorted(cells) == [("photo", 0), ("photo", 1), ("sketch", 0), ("sketch", 1)]
    # Per cell: features of its train images, then of its val images; none of the held-out domain.
    assert len(features) == 2 * len(cells)
    for ((held_out, seed), train_paths), (_, val_paths) in zip(features[::2], features[1::2]):
        assert {modality_of[p] for p in train_paths + val_paths} == {"cartoon", "photo", "sketch"} - {held_out}
        assert set(train_paths) | set(val_paths) == {p for p, m in modality_of.items() if m != held_out}
        assert set(val_paths) == set(domainbed_partition(table, [held_out], seed)["val"]["path"])
    # The checkpoint is chosen on those val images only.
    assert fits == [(len(val_paths), "val_loss") for _, val_paths in features[1::2]]

    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["test"] == json.loads(json.dumps(metrics["test"]))
    for domain, scores in written["test"]["per_modality"].items():
        values = [json.loads((tmp_path / "run" / f"{domain}_seed{s}" / "metrics.json").read_text())
                  ["test"]["per_modality"][domain]["accuracy"] for s in (0, 1)]
        assert scores["accuracy_seeds"] == values
        assert scores["accuracy"] == pytest.approx(np.mean(values))
        assert scores["accuracy_se"] == pytest.approx(np.std(values) / math.sqrt(2))
        assert scores["images"] == int((table["modality"] == domain).sum())
    assert written["test"]["accuracy"] == pytest.approx(np.mean([v["accuracy"] for v in written["test"]["per_modality"].values()]))
    assert "| **average** |" in (tmp_path / "run" / "domainbed_table.md").read_text()

    # Again: every cell is read back, none trained; with another setting, refused in one line.
    cells.clear()
    assert train_module.main(args)["test"] == metrics["test"]
    assert cells == []
    out = capsys.readouterr().out
    assert out.count("(read back)") == 4 and "estimated" not in out
    with pytest.raises(UserError, match="photo_seed0 was run with other settings"):
        train_module.main([*args, "--epochs", "2"])


@pytest.mark.parametrize("flags, message", [
    (["--protocol", "leave_one_out", "--seeds", "0,1"], "--seeds applies to --protocol domainbed only"),
    (["--test-domains", "sketch"], "--test-domains applies to --protocol domainbed only"),
    (["--protocol", "domainbed", "--folds", "3"], "drop --folds and --split"),
    (["--protocol", "domainbed", "--split", "80,20,0"], "drop --folds and --split"),
])
def test_bad_flag_combinations_are_one_line_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err


def test_unknown_test_domain_and_a_tool_without_one(tiny_domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="--test-domains clipart"):
        train_module.main(["--data-dir", str(tiny_domains), "--protocol", "domainbed", "--test-domains", "clipart",
                           *SMALL])
    with pytest.raises(ValueError, match="needs --test-domains"):
        probe_module.main(["--data-dir", str(tiny_domains), "--protocol", "domainbed", *SMALL,
                           "--run-dir", str(tmp_path / "probe")])
    part = partitions(CrossModalConfig(protocol="domainbed", test_domains=["cartoon"], backbone="small",
                                       weights="none", image_size=16), read_domains(tiny_domains))[0]
    assert set(part["test"]["modality"]) == {"cartoon"}


def test_help_says_what_domainbed_is(capsys):
    with pytest.raises(SystemExit):
        train_module.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "domainbed: leave one domain out as DomainBed reports PACS" in text
    assert "--seeds" in text and "--test-domains" in text
