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
