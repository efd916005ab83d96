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
    for d in (1, 3):
        for key in (
            f"hybrid_over_fastest_plain_d{d}",
            f"hybrid_over_fastest_plain_jit_d{d}",
            f"hybrid_jit_over_fastest_plain_any_d{d}",
            f"hybrid_over_conv_d{d}",
            f"loop_over_hybrid_d{d}",
            f"loop_over_hybrid_jit_d{d}",
            f"hybrid_ms_d{d}",
            f"hybrid_jit_ms_d{d}",
            f"loop_ms_d{d}",
            f"conv_ms_d{d}",
        ):
            assert result[key] > 0, key
    for key in ("film", "condconv"):
        assert result[f"{key}_over_fastest_plain_d3"] > 0 and result[f"{key}_over_fastest_plain_jit_d3"] > 0
    for key in ("conv_ms", "conv_jit_ms", "mapped_ms", "mapped_jit_ms"):
        assert result[key] > 0, key
    # "grouped" is timed where it can be trained: a GPU, or TensorFlow's oneDNN CPU kernels.
    from hybridvision.common.layers.per_sample_conv import _accelerator_visible, _grouped_conv_differentiable_on_cpu

    assert result["grouped_timed"] == (_accelerator_visible() or _grouped_conv_differentiable_on_cpu())
    if result["grouped_timed"]:
        assert result["grouped_ms_d3"] > 0 and result["grouped_over_fastest_plain_d3"] > 0
    else:
        assert "grouped_ms_d3" not in result
    assert result["fastest_plain"] in ("conv", "mapped")
    assert result["fastest_plain_jit"] in ("conv_jit", "mapped_jit")
    # The floor is the faster plain convolution of the run.
    floor = min(result["conv_ms"], result["mapped_ms"])
    assert abs(result["hybrid_over_fastest_plain_d3"] - result["hybrid_ms_d3"] / floor) < 0.02 * result[
        "hybrid_over_fastest_plain_d3"
    ] + 1e-3
    assert result["quick"] is True and result["batch_size"] == 4


def test_hybrid_conv_ratios_use_the_faster_plain_convolution():
    from benchmarks.hybrid_conv import ratios

    medians = {
        "conv": 2.0, "mapped": 1.0, "conv_jit": 1.5, "mapped_jit": 30.0,
        "hybrid_d3": 1.1, "hybrid_d3_jit": 1.8, "loop_d3": 4.0,
    }
    result = ratios(medians, [3])
    assert result["fastest_plain"] == "mapped" and result["fastest_plain_jit"] == "conv_jit"
    assert result["hybrid_over_fastest_plain_d3"] == 1.1
    assert result["hybrid_over_fastest_plain_jit_d3"] == 1.2
    assert result["hybrid_jit_over_fastest_plain_any_d3"] == 1.8
    assert result["loop_over_hybrid_d3"] == round(4.0 / 1.1, 3)


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


@pytest.mark.slow
def test_scale_small_sizes_json(capsys, tmp_path):
    from benchmarks import scale

    returned = scale.main(["--sizes", "200,400", "--json", "--out", str(tmp_path), "--app-images", "0"])
    result = last_json_line(capsys)
    assert result == json.loads(json.dumps(returned))
    assert result["sizes"] == [200, 400]
    assert set(result["ratio_largest_over_smallest"]) == set(scale.PHASES)
    assert all(v > 0 for v in result["ratio_largest_over_smallest"].values())
    assert set(result["peak_rss_mb"]) == {"200", "400"} and all(v > 0 for v in result["peak_rss_mb"].values())
    for size, per_image in result["us_per_image"].items():
        assert set(per_image) == set(scale.PHASES) and all(v > 0 for v in per_image.values()), size
        shares = result["input_share_of_step"][size]
        assert set(shares) == {"attractiveness", "orientation_light"} and all(0 <= v <= 1 for v in shares.values())
    for one in result["per_size"]:
        assert set(one["rss_mb_after"]) >= {"start", "generate", *scale.PHASES}
    assert list(tmp_path.iterdir()) == []  # the generated images are removed


@pytest.mark.slow
def test_scale_app_step_through_each_apps_own_pipeline_and_model(tmp_path):
    from benchmarks import scale

    result = scale.app_steps(40, tmp_path, extra=["--image-size", "32"])  # the apps' defaults, smaller images
    assert set(result) == set(scale.APPS)
    assert result["attractiveness"]["model"] == "efficientnet_lite0"
    assert result["orientation_light"]["model"] == "from_scratch" and result["orientation_light"]["cache"] is True
    for app, r in result.items():
        assert r["image_size"] == 32 and 0 < r["images"] <= 40, app
        assert r["us_per_image_app"] > 0 and r["us_per_image_bare"] > 0 and r["us_per_image_pipeline_alone"] > 0, app
        assert r["ratio"] == pytest.approx(r["us_per_image_bare"] / r["us_per_image_app"], rel=0.01), app
        assert r["cpu_ratio"] > 0, app
