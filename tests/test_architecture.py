"""The layers of the library point one way, and the check that says so can fail.

The contract lives in pyproject.toml (``[tool.importlinter]``) and is checked
by import-linter's ``lint-imports``, imports inside functions included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.is_file():
        pytest.fail("lint-imports is missing: pip install -e '.[test]' (import-linter)")
    env = dict(os.environ, PYTHONPATH=str(pythonpath or cwd))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_layers_contract_is_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_contract_names_every_subpackage():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    named = {part.strip() for layer in layers["layers"] for part in layer.split("|")}
    present = {p.name for p in (ROOT / "embedlab").iterdir() if (p / "__init__.py").is_file()}
    present |= {p.stem for p in (ROOT / "embedlab").glob("*.py") if p.stem != "__init__"}
    assert named == present


def test_an_upward_import_breaks_the_contract(tmp_path):
    """A copy of the library where the lowest layer imports the top one is reported."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "embedlab", copy / "embedlab", ignore=shutil.ignore_patterns("pretrained", "__pycache__"))
    shutil.copytree(ROOT / "cli", copy / "embedlab_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    errors = copy / "embedlab" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _report():\n    from embedlab import report  # upward\n")
    done = lint_imports(copy)
    assert done.returncode != 0, done.stdout
    assert "BROKEN" in done.stdout and "embedlab.core.errors -> embedlab.report" in done.stdout


def test_no_module_imports_itself_back():
    """No import cycle between any two modules, imports inside functions included.

    The layers contract keeps packages apart; this keeps the modules of one package apart too.
    """
    import grimp

    graph = grimp.build_graph("embedlab", cache_dir=None)
    cycles = [(a, b) for a in sorted(graph.modules) for b in sorted(graph.find_modules_directly_imported_by(a))
              if graph.find_shortest_chain(importer=b, imported=a)]
    assert cycles == []


def test_a_network_run_backbone_is_plugged_in_through_its_entry_point():
    """``cnn:RUN`` works with only the features layer imported: the entry point loads the networks' plug-in."""
    code = ("import sys\n"
            "from embedlab.features import create_extractor\n"
            "assert 'embedlab.nets' not in sys.modules\n"
            "ex = create_extractor('cnn:tests/fixtures/runs/network-cnn')\n"
            "print(type(ex).__module__, type(ex).__name__, ex.dim)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["embedlab.nets.features", "NetworkRunEmbedding", "8"]


def test_a_broken_backbone_plug_in_is_a_warning_not_a_crash(monkeypatch):
    import importlib.metadata

    from embedlab.core.errors import EmbedlabError
    from embedlab.features import cnn, create_extractor

    broken = importlib.metadata.EntryPoint("broken", "no_such_module_anywhere:Thing", cnn.PLUGIN_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    monkeypatch.setattr(cnn, "_plugins_loaded", False)
    with pytest.warns(UserWarning, match="backbone plug-in 'broken'.*ModuleNotFoundError"):
        with pytest.raises(EmbedlabError, match="backbone='no-such-backbone' is not one of"):
            create_extractor("cnn:no-such-backbone")
