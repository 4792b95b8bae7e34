"""The house plan (docs/ARCHITECTURE.md) holds: arrows point down, no circles, a real CLI, a package."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

PKG = ROOT / "composer"
#: layer of each top-level part; an import may only go to the same part or a lower layer
LAYERS = {"ui": 5, "cli": 5, "bench": 4, "evaluation": 4, "api": 3, "training": 3, "render": 2, "models": 1,
          "music": 1, "checkpoints": 0, "sandbox": 0, "paths": 0, "errors": 0, "device": 0, "__init__": 0,
          "__main__": 6}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    mods = {_module(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for mod, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            deps |= {n for n in names if n in mods and n != mod}
        graph[mod] = deps
    return graph


def _part(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_circles():
    graph = import_graph()
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            if d == "composer" or d in stack[:1]:
                continue
            if state.get(d) == 1:
                cycles.append(stack + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2
    for m in graph:
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_arrows_point_down():
    back = [(m, d) for m, deps in import_graph().items() for d in deps
            if d != "composer" and _part(m) != _part(d) and LAYERS[_part(d)] > LAYERS[_part(m)]]
    assert back == []
    users_of_ui_or_cli = [(m, d) for m, deps in import_graph().items() for d in deps
                          if _part(d) in ("ui", "cli") and _part(m) not in ("ui", "cli", "__main__")]
    assert users_of_ui_or_cli == []


def test_inference_never_imports_a_trainer():
    bad = [(m, d) for m, deps in import_graph().items() for d in deps
           if _part(m) in ("api", "render", "models", "music", "ui") and _part(d) == "training" and d != "composer.training"]
    assert bad == []


def test_few_modules_at_the_top():
    assert len(list(PKG.glob("*.py"))) <= 8


@pytest.mark.parametrize("cmd", ["--help", "train --help", "eval --help", "train musegan --help",
                                 "train notes --help", "train charrnn --help", "train cyclegan --help",
                                 "train classifier --help", "eval musegan --help", "eval notes --help",
                                 "eval cyclegan --help", "eval charrnn --help", "abc --help", "abc sample --help",
                                 "abc check --help", "generate --help", "transfer --help", "continue --help",
                                 "render --help", "info --help", "bench --help", "serve --help", "harmonize --help",
                                 "eval harmonize --help"])
def test_every_command_has_help(cmd):
    r = run_cli(*cmd.split())
    assert r.returncode == 0 and "usage" in r.stdout.lower(), r.stderr


def test_package_installs_without_dependencies(tmp_path):
    import shutil
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "runs", "artifacts", "*.egg-info",
                                                               "__pycache__", ".pytest_cache"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(tmp_path / "site"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    site = tmp_path / "site"
    assert (site / "composer" / "api" / "compose.py").exists()
    assert (site / "share" / "composer" / "checkpoints" / "musegan.safetensors").exists()


def test_public_api_is_user_actions_with_docstrings():
    from composer.ui.app import build_app
    demo = build_app()
    public = [f for f in demo.fns.values() if getattr(f, "api_visibility", "public") == "public"]
    assert 10 <= len(public) <= 30
    assert not [f.api_name for f in public if str(f.api_name).startswith(("finish", "first_show"))]
    assert not [f.api_name for f in public if not (f.fn and (f.fn.__doc__ or "").strip())]
