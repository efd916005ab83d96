"""examples/slurm: the batch scripts parse, and the commands they run accept their flags."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "slurm"


@pytest.mark.parametrize("name", ["tune_distributed.sbatch", "multihost_train.sbatch"])
def test_slurm_example_is_valid_bash(name):
    path = EXAMPLES / name
    assert path.read_text().startswith("#!/bin/bash\n") and "#SBATCH" in path.read_text()
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


def test_slurm_multihost_example_runs_an_app_with_valid_flags():
    from hybridvision.apps.digit_pairs.config import DigitPairsConfig
    from hybridvision.common.config import parse_config

    text = (EXAMPLES / "multihost_train.sbatch").read_text().replace("\\\n", " ")
    (command,) = re.findall(r"^srun python -m hybridvision.apps\.digit_pairs\.train (.*)$", text, re.M)
    cfg = parse_config(DigitPairsConfig, shlex.split(command))
    assert cfg.strategy == "data_parallel" and "export KERAS_BACKEND=jax" in text


def test_slurm_tuner_example_sets_the_kerastuner_variables():
    text = (EXAMPLES / "tune_distributed.sbatch").read_text()
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID=chief", "KERASTUNER_TUNER_ID=tuner"):
        assert name in text
    assert "python -m hybridvision.apps.orientation_light.tune" in text
