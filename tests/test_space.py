"""`make space DIR=…` writes a Hugging Face Space that deploys as it is, and only that.

Checked against the Spaces configuration reference and the ZeroGPU page of huggingface/hub-docs
(docs/hub/spaces-config-reference.md, docs/hub/spaces-zerogpu.md, August 2026).
"""
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

#: ZeroGPU's Python versions ("Supported Versions" of spaces-zerogpu.md)
ZEROGPU_PYTHON = {"3.12.12", "3.10.13"}
#: valid ``suggested_hardware`` flavours (spaces-config-reference.md)
HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4", "l40sx8",
            "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4", "a100x8"}
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
TEN_MB = 10 * 1024 * 1024
TEST_ONLY = {"pytest", "playwright", "hypothesis", "coverage", "pytest-cov", "mypy", "ruff"}


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("space") / "composer-space"
    proc = subprocess.run(["make", "-s", "space", f"DIR={out}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def _front_matter(readme: Path) -> dict:
    import yaml
    text = readme.read_text(encoding="utf-8")
    m = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert m, "README.md must start with the YAML front matter"
    return yaml.safe_load(m.group(1))


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts}


def test_space_holds_exactly_what_the_space_runs(space):
    files = _files(space)
    top = {f.split("/", 1)[0] for f in files}
    assert top == {"README.md", "LICENSE", "app.py", "requirements.txt", "packages.txt", ".gitattributes",
                   "composer", "checkpoints", "assets"}
    tracked = set(subprocess.run(["git", "ls-files", "composer", "checkpoints"], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout.split())
    assert {f for f in files if f.startswith(("composer/", "checkpoints/"))} == tracked
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    for name in ("musegan", "charrnn", "cyclegan_bach_folk", "notes_lstm"):
        assert f"checkpoints/{name}.safetensors" in files and f"checkpoints/{name}.json" in files


def test_front_matter_follows_the_spaces_reference(space):
    fm = _front_matter(space / "README.md")
    assert fm["sdk"] == "gradio"
    import gradio
    assert fm["sdk_version"] == gradio.__version__
    req = (space / "requirements.txt").read_text()
    assert f"gradio=={fm['sdk_version']}" in req  # the SDK the Space installs is the one the app is pinned to
    assert str(fm["python_version"]) in ZEROGPU_PYTHON
    assert fm["suggested_hardware"] in HARDWARE
    assert fm["colorFrom"] in COLORS and fm["colorTo"] in COLORS
    assert len(fm["short_description"]) <= 60
    assert isinstance(fm.get("tags"), list) and all(isinstance(t, str) for t in fm["tags"])
    assert (space / fm["app_file"]).is_file()
    # the package says it runs on that Python
    import tomllib
    need = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lo = tuple(int(x) for x in need.lstrip(">=").split("."))
    assert tuple(int(x) for x in str(fm["python_version"]).split("."))[:2] >= lo


def test_requirements_are_runtime_only_and_pinned(space):
    lines = [ln.split("#", 1)[0].strip() for ln in (space / "requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln]
    assert reqs and not any(ln.startswith("-r") for ln in reqs)
    names = {re.split(r"[=<>!~\[ ]", ln, 1)[0].lower() for ln in reqs}
    assert not names & TEST_ONLY, names & TEST_ONLY
    assert all(re.search(r"(==|>=)\d", ln) for ln in reqs), "give every runtime requirement a version"
    pinned = {re.split(r"==", ln, 1)[0].lower() for ln in reqs if "==" in ln}
    assert {"gradio", "torch", "music21", "pyfluidsynth", "verovio"} <= pinned
    assert {"gradio", "torch", "pyfluidsynth"} <= names
    debs = [ln.strip() for ln in (space / "packages.txt").read_text().splitlines() if ln.strip()
            and not ln.startswith("#")]
    assert "fluidsynth" in debs


def test_every_file_is_small_or_lfs_tracked(space):
    patterns = []
    for line in (space / ".gitattributes").read_text().splitlines():
        parts = line.split()
        if parts and not line.startswith("#") and "filter=lfs" in parts:
            patterns.append(parts[0])
    assert "*.safetensors" in patterns
    for f in _files(space):
        lfs = any(fnmatch.fnmatch(Path(f).name, p) or fnmatch.fnmatch(f, p) for p in patterns)
        size = (space / f).stat().st_size
        assert lfs or size < TEN_MB, f"{f} is {size} bytes and not LFS-tracked"
        assert not (f.endswith(".safetensors") and not lfs)


def test_app_file_imports_in_the_space_alone(space, tmp_path):
    """``app.py`` builds the app from the Space's own files (no checkout, no tests on the path)."""
    code = ("import sys, app, gradio as gr; assert isinstance(app.demo, gr.Blocks); "
            "import composer; assert composer.__file__.startswith(sys.argv[1]), composer.__file__; print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(COMPOSER_RUNS=str(tmp_path / "runs"), PYTHONSAFEPATH="")
    proc = subprocess.run([sys.executable, "-c", code, str(space)], cwd=space, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_make_space_refuses_a_folder_with_other_files(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    (tmp_path / "precious.txt").write_text("keep me")
    proc = subprocess.run(["make", "-s", "space", f"DIR={tmp_path}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and (tmp_path / "precious.txt").read_text() == "keep me"
