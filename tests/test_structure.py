"""The house rules that a reviewer would otherwise check by hand: layers one way, only the engine seam
(and Ray Serve) import the engine, small modules, each module saying what it owns, and the architecture
map naming every package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from oms_testing import ROOT

SRC = ROOT / "src" / "openmindspore"
MAX_LINES = 400

# what each top-level package may import from the others (docs/architecture.md, "Layers")
BASE = {"errors", "validation"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "validation": {"errors"},
    "engine": BASE,
    "data": BASE,
    "models": BASE | {"data"},
    "track": BASE,  # trackers, provenance, plots: beside train, importing neither train nor elastic
    "train": BASE | {"data", "models", "engine", "track"},
    "elastic": BASE | {"engine", "data", "models", "train", "track"},
    "serve": BASE | {"engine", "data", "models", "train"},
    "automl": BASE | {"engine", "data", "models", "train", "features"},  # features: the select=intervention step
    "causal": BASE | {"engine", "data", "models", "train", "features", "automl"},
    "active": BASE | {"engine", "data", "models", "train"},
    "features": BASE | {"engine", "data", "models", "train"},
    "cli": None,  # the top: may import everything
}
ENGINE_IMPORTERS = {"engine", "serve"}  # Ray / openYuanrong are imported only behind the seam (and Ray Serve)


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _package(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_every_top_level_package_has_its_layer_rule():
    pkgs = {_package(p) for p in _modules()} - {"__init__"}
    assert pkgs <= set(ALLOWED), f"add {sorted(pkgs - set(ALLOWED))} to ALLOWED and to docs/architecture.md"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layers_import_one_way(path):
    pkg = _package(path)
    allowed = ALLOWED.get(pkg)
    bad = []
    for mod in _imports(path):
        parts = mod.split(".")
        if parts[0] in ("ray", "yr") and pkg not in ENGINE_IMPORTERS:
            bad.append(f"{mod} (only engine/ and serve/ import the engine)")
        if parts[0] == "openmindspore" and len(parts) > 1 and allowed is not None:
            if parts[1] != pkg and parts[1] not in allowed:
                bad.append(f"{mod} ({pkg} may import {sorted(allowed)})")
    assert not bad, f"{path.relative_to(SRC)} imports against the layer order: {bad}"


def test_modules_are_small():
    big = {str(p.relative_to(SRC)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by the state they own): {big}"


def test_every_module_says_what_it_is():
    missing = [str(p.relative_to(SRC)) for p in _modules() if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def test_elastic_modules_name_the_state_they_own():
    silent = []
    for p in sorted((SRC / "elastic").glob("*.py")):
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        if p.name != "__init__.py" and "owns" not in doc.lower():
            silent.append(p.name)
    assert not silent, f"elastic modules whose docstring does not say what state it owns: {silent}"


def test_architecture_map_names_every_package_and_the_readme_points_to_it():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    pkgs = sorted({p.relative_to(SRC).parts[0] for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"})
    missing = [p for p in pkgs if f"`{p}`" not in doc and f"{p}/" not in doc]
    assert not missing, f"docs/architecture.md does not describe {missing}"
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
