"""One import name: the folders at the repository root install under `hybridvision`.

`common/` installs as `hybridvision.common`, `apps/` as `hybridvision.apps`,
`data_prep/` as `hybridvision.data_prep` (keras-hub maps its source folders
the same way). `benchmarks/`, `tests/` and `notebooks/` are not installed.
Everything else about the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = ("common", "apps", "data_prep")

packages = ["hybridvision"]
for folder in FOLDERS:
    packages += [f"hybridvision.{name}" for name in find_packages(include=[folder, f"{folder}.*"])]

setup(
    packages=packages,
    package_dir={"hybridvision": "hybridvision", **{f"hybridvision.{folder}": folder for folder in FOLDERS}},
    package_data={"hybridvision.data_prep": ["README.md"]},
)
