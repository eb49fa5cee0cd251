"""Shared test fixtures. MindSpore runs in PyNative mode on CPU; its C++ logs are silenced."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GLOG_v", "3")


@pytest.fixture(scope="session")
def ms_cpu():
    """MindSpore in PyNative mode on CPU (the platform's default context)."""
    from openmindspore.train.trainer import setup_mindspore

    setup_mindspore()
    import mindspore

    return mindspore


@pytest.fixture(scope="session")
def readme_dir(tmp_path_factory):
    """One folder for the README's blocks (readme_testing): runs they make are shared by the tests of them."""
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="session")
def readme_usage(readme_dir):
    """The README's Usage block, run once (readme_testing.run_usage)."""
    from readme_testing import run_usage

    return run_usage(readme_dir)


@pytest.fixture(scope="session")
def readme_user_project(readme_dir):
    """The README's "Your model, your data" block, run once (readme_testing.run_user_project)."""
    from readme_testing import run_user_project

    return run_user_project(readme_dir)


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest's hook signature
    """Files start longest first, estimated by their count of ``slow`` tests, so that under pytest-xdist
    (`make test` runs ``-n 2 --dist loadfile --no-loadscope-reorder``: a file is one unit of work, its module
    fixtures made once) no long file is left to the end of a run; within a file the order is the file's. A
    session fixture is made once per worker: the tests sharing an expensive one live in one file (the
    README's runs: tests/test_readme.py)."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(str(item.path), []).append(item)

    def weight(tests: list) -> int:
        return sum(1 for it in tests if it.get_closest_marker("slow"))

    items[:] = [it for _, tests in sorted(files.items(), key=lambda kv: -weight(kv[1])) for it in tests]


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest's hook signature
    """Say in the summary when reference comparisons were skipped for want of the `test` extra (read from the
    skip reports, which reach this process from pytest-xdist's workers too)."""
    from oms_testing import TEST_EXTRA_REASON

    missing = set()
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if TEST_EXTRA_REASON in reason:
            missing.add(reason.removeprefix("Skipped: ").split(" is not installed")[0])
    if missing:
        terminalreporter.write_line(
            f"NOTE: reference tests skipped because the test extra is not installed ({', '.join(sorted(missing))}); "
            "run `make test` or pip install -e '.[test]' to run them",
            yellow=True,
        )
