"""The README's command blocks, run once per test session and shared: the Usage block (``runs/`` of the
commands in the shared folder) and the "Your model, your data" block (in a copy of ``examples/user_project``
in the same folder). tests/test_readme.py asserts what they did and serves
the runs they made, as the README's Serving section does."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from oms_testing import ROOT, run_oms

__all__ = ["README", "ReadmeRuns", "blocks", "section", "usage_commands", "run_usage", "run_user_project"]

README = (ROOT / "README.md").read_text()


def blocks(lang: str, text: str = README) -> list[str]:
    """The fenced ``lang`` code blocks of ``text``, in order."""
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def section(title: str) -> str:
    """The README section under ``## title`` (up to the next ``## ``)."""
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def usage_commands() -> list[str]:
    """The ``oms`` lines of the Usage block (comments stripped)."""
    usage = blocks("bash")[1]
    return [ln.split("#")[0].strip() for ln in usage.splitlines() if ln.strip().startswith("oms ")]


@dataclass
class ReadmeRuns:
    """Where a block ran and every command line's result, in order (it stops at the first failure)."""

    cwd: Path
    results: list[tuple[str, subprocess.CompletedProcess]] = field(default_factory=list)

    def failures(self) -> list[str]:
        return [f"{line}\n{p.stderr[-2000:]}" for line, p in self.results if p.returncode != 0]


def run_usage(base: Path) -> ReadmeRuns:
    """The Usage block from the repository root, its ``runs/`` under ``base`` (train commands capped with
    ``--max-steps 3`` unless they give one or resume; one that kills a worker at step K runs to K + 3, so the
    kill and the recovery happen)."""
    out = ReadmeRuns(base)
    for line in usage_commands():
        args = shlex.split(line)[1:]
        args = [str(base / a) if a.startswith("runs/") else a for a in args]
        if args[0] == "train" and "--max-steps" not in args and "--resume" not in args:
            kill = args[args.index("--kill-worker-at") + 1] if "--kill-worker-at" in args else None
            args += ["--max-steps", str(int(kill.split(":")[0]) + 3 if kill else 3)]
        out.results.append((line, proc := run_oms(*args, cwd=ROOT, timeout=600)))
        if proc.returncode != 0:
            break
    return out


def run_user_project(base: Path) -> ReadmeRuns:
    """The "Your model, your data" block as written, from a copy of ``examples/user_project`` at
    ``base/examples/user_project`` (outside the repository); ``cwd`` is the folder it ends in."""
    (commands,) = blocks("bash", section("Your model, your data"))
    shutil.copytree(ROOT / "examples" / "user_project", base / "examples" / "user_project")
    out = ReadmeRuns(base)
    for line in commands.splitlines():
        args = shlex.split(line.split("  #")[0])
        if args[0] == "cd":
            out.cwd = out.cwd / args[1]
            continue
        if args[0] == "python":
            proc = subprocess.run([sys.executable, *args[1:]], cwd=out.cwd, capture_output=True, text=True, timeout=120)
        else:
            proc = run_oms(*args[1:], cwd=out.cwd, timeout=600)
        out.results.append((line, proc))
        if proc.returncode != 0:
            break
    return out
