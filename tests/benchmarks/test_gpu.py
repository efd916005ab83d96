"""benchmarks.gpu: one clear line without a GPU; the whole measurement as a tiny CPU dry run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_without_a_gpu_says_so_in_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("benchmarks.gpu:")]
    assert len(lines) == 1 and "no GPU visible" in lines[0] and "--cpu-smoke" in lines[0]


@pytest.mark.slow
def test_gpu_benchmark_cpu_smoke_prints_every_figure(capsys, tmp_path):
    from benchmarks import gpu

    out = tmp_path / "gpu.json"
    returned = gpu.main(["--cpu-smoke", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(out.read_text()) == json.loads(json.dumps(returned))
    assert printed["cpu_smoke"] is True and printed["device"].startswith("CPU")
    for tag in ("float32_no_xla", "float32_xla", "mixed_float16_no_xla", "mixed_float16_xla"):
        figures = printed["layer"][tag]
        assert figures["hybrid_ms"] > 0 and figures["conv_ms"] > 0 and figures["hybrid_over_conv"] > 0
    for policy in ("float32", "mixed_float16"):
        assert printed["app_step"][policy]["images_per_s"] > 0
    pipeline = printed["input_pipeline"]
    for kind in ("uncached", "cached"):
        assert pipeline[kind]["images_per_s"] > 0 and pipeline[kind]["pipeline_over_step"] > 0
    assert pipeline["end_to_end"]["images_per_s"] > 0
