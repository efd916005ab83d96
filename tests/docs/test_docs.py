"""The README and the documentation site.

- the site builds with `mkdocs build --strict` (a broken link, anchor or
  docstring reference fails it);
- every ```python block of README.md runs, in order, each in a fresh process
  in one temporary folder (the quick start trains a step and saves; the next
  block loads the model in a new process); so do the examples of the guide
  pages that stand alone;
- README.md stays short and its links to files of the repository resolve;
- every stored result under docs/results/ is cited by docs/results/README.md.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results"
MAX_README_LINES = 200

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _env():
    env = dict(os.environ)
    # The checkout's hybridvision, whether or not it is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def _local_links(text):
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto, in-page anchors
        yield target


def _slug(heading):
    """The id Python-Markdown's toc (and GitHub, for these headings) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def _anchors(path):
    text = path.read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([^"]+)"', text))
    ids |= {_slug(h) for h in re.findall(r"^#{1,6}\s+(.*)$", text, flags=re.M)}
    return ids


def test_site_builds_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings or [result.stderr[-5000:]])
    for page in ("index.html", "api/layers/index.html", "api/transfer/index.html", "results/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    layers = (tmp_path / "site" / "api" / "layers" / "index.html").read_text(encoding="utf-8")
    for name in ("HybridConv2D", "HybridConv1D", "HybridConv3D", "FiLMConv2D", "CondConv2D",
                 "SpatialPyramidPooling2D", "AffineAugmentation"):
        assert f'id="hybridvision.layers.{name}"' in layers, f"{name} missing from the API page"


def _run_blocks(page, folder):
    """Runs every ```python block of `page` in order, each in a fresh process, in `folder`."""
    blocks = _python_blocks(page.read_text(encoding="utf-8"))
    for number, code in enumerate(blocks, 1):
        script = folder / f"{page.stem}_block_{number}.py"
        script.write_text(code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)], cwd=folder, env=_env(), capture_output=True, text=True, timeout=900,
        )
        assert result.returncode == 0, (
            f"{page.relative_to(ROOT)}: python block {number} failed:\n{code}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return blocks


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path):
    blocks = _run_blocks(README, tmp_path)
    assert len(blocks) >= 2, "README should have the quick start and the reload in a new process"
    assert list(tmp_path.glob("*.keras")), "the quick start should save a model into the current folder"


# Guide pages whose examples stand alone (the others show commands or use files a run made).
RUNNABLE_PAGES = ("docs/index.md", "docs/transfer.md", "docs/deploy.md")


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_guide_python_blocks_run(page, tmp_path):
    assert _run_blocks(ROOT / page, tmp_path), f"{page} has no python block"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    links = list(_local_links(text))
    assert links, "README.md should link to the docs"
    for target in links:
        path, _, anchor = target.partition("#")
        file = ROOT / path
        assert file.exists(), f"README links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"README links to {target}: no such anchor in {path}"


def test_every_stored_result_is_cited():
    text = (RESULTS / "README.md").read_text(encoding="utf-8")
    cited = {target.split("/")[0] for target in _local_links(text)}
    entries = sorted(entry.name for entry in RESULTS.iterdir() if entry.is_dir())
    missing = [entry for entry in entries if entry not in cited]
    assert not missing, f"docs/results/README.md does not link to these stored outputs: {missing}"


def test_every_regenerate_entry_has_a_command():
    listing = subprocess.run(["bash", str(RESULTS / "regenerate.sh"), "--list"], capture_output=True, text=True, check=True).stdout
    entries = dict(line.split(": python", 1) for line in listing.splitlines())
    assert len(entries) > 10, listing
    empty = [name for name, command in entries.items() if not command.strip()]
    assert not empty, f"docs/results/regenerate.sh lists these entries without a command: {empty}"
