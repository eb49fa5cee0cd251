"""A user who runs `pip install .` (not the editable install the Makefile makes) gets every file the package
reads at run time: the wheel built from the project's own files holds each non-Python file under
src/openmindspore (the kernels' C++ sources and their header, the gRPC protocol's .proto)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from oms_testing import ROOT

SRC = ROOT / "src" / "openmindspore"


def _data_files() -> set[str]:
    return {
        str(p.relative_to(SRC.parent))
        for p in SRC.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc", ".so") and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    proj = tmp / "project"  # a copy, so the build writes nothing into the checkout
    proj.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, proj / name)
    shutil.copytree(SRC, proj / "src" / "openmindspore", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    out = tmp / "dist"
    # the venv's own setuptools when it meets pyproject's build requirement (offline, fast), else pip's isolated build
    isolation = [] if int(version("setuptools").split(".")[0]) < 77 else ["--no-build-isolation"]
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out), str(proj)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = out.glob("openmindspore-*.whl")
    return whl


def test_the_wheel_holds_every_data_file_of_the_package(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = _data_files()
    assert {"openmindspore/models/kernels/cpu_kernels.cpp", "openmindspore/models/kernels/kernel_common.h"} <= wanted
    missing = sorted(wanted - names)
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"
