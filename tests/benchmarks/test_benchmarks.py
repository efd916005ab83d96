"""Smoke tests: each benchmark runs with `--quick --json` and ends with one JSON line."""

import json

import pytest


def last_json_line(capsys):
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1])


@pytest.mark.slow
def test_hybrid_conv_quick_json(capsys):
    from benchmarks import hybrid_conv

    returned = hybrid_conv.main(["--quick", "--json", "--covariates", "1", "3"])
    result = last_json_line(capsys)
    assert result == json.loads(json.dumps(returned))
    for key in ("hybrid_over_conv_d3", "loop_over_hybrid_d3", "hybrid_over_conv_d1"):
        assert result[key] > 0
    assert (
        result["hybrid_ms_d3"] > 0
        and result["conv_ms_d3"] > 0
        and result["loop_ms_d3"] > 0
    )
    assert result["quick"] is True and result["batch_size"] == 4


def make_tree(root):
    from benchmarks.input_pipeline import make_jpegs

    return make_jpegs(root, classes=2, per_class=8, size=40)


@pytest.mark.slow
def test_input_pipeline_quick_json_without_tf_keras(capsys, tmp_path):
    from benchmarks import input_pipeline

    data = make_tree(tmp_path / "jpegs")
    input_pipeline.main(
        ["--quick", "--json", "--no-imagedatagenerator", "--data-dir", str(data)]
    )
    result = last_json_line(capsys)
    assert result["speedup_vs_imagedatagenerator"] is None
    assert 0 < result["fraction_of_decode_ceiling"]
    assert (
        result["ours_augmented_images_per_s"] > 0
        and result["decode_only_images_per_s"] > 0
    )


@pytest.mark.slow
def test_input_pipeline_quick_json_against_image_data_generator(capsys, tmp_path):
    # tf_keras (ImageDataGenerator) comes from requirements-bench.txt, which `make test` installs.
    from benchmarks import input_pipeline

    data = make_tree(tmp_path / "jpegs")
    input_pipeline.main(["--quick", "--json", "--data-dir", str(data)])
    result = last_json_line(capsys)
    assert result["speedup_vs_imagedatagenerator"] > 0
    assert result["imagedatagenerator_images_per_s"] > 0
    assert 0 < result["fraction_of_decode_ceiling"]


@pytest.mark.slow
def test_feature_extraction_quick_json(capsys, tmp_path):
    from benchmarks import feature_extraction

    data = make_tree(tmp_path / "jpegs")
    returned = feature_extraction.main(["--quick", "--json", "--data-dir", str(data), "--weights", "none"])
    result = last_json_line(capsys)
    assert result == json.loads(json.dumps(returned))
    assert result["pipeline_images_per_s"] > 0 and result["bare_predict_images_per_s"] > 0
    assert result["pipeline_over_bare"] == pytest.approx(
        result["pipeline_images_per_s"] / result["bare_predict_images_per_s"], rel=1e-6
    )
