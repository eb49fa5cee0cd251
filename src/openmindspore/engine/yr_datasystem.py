"""openYuanrong's data system (``openyuanrong-datasystem``, the optional ``yrds`` extra) behind the engine seam.

Owns one key-value client per process and address (``kv_client``): the only place that imports
``yr.datasystem``. The elastic snapshot store ``yrds`` (:mod:`openmindspore.elastic.store.yrds`) uses it.
"""

from __future__ import annotations

from typing import Any

from openmindspore.errors import ConfigError

__all__ = ["kv_client"]

_CLIENTS: dict[tuple[str, int], Any] = {}


def kv_client(host: str, port: int) -> Any:
    """A connected ``yr.datasystem.KVClient`` for the data-system worker at ``host:port`` (cached)."""
    if (host, port) not in _CLIENTS:
        try:
            from yr.datasystem import KVClient
        except ImportError:
            raise ConfigError(
                "--snapshot-store", "yrds", "openyuanrong-datasystem installed", "pip install 'openmindspore[yrds]'"
            ) from None
        client = KVClient(host, port, connect_timeout_ms=10000)
        try:
            client.init()
        except Exception as e:  # noqa: BLE001 - the SDK raises its own types
            raise ConfigError(
                "OMS_YRDS_ADDRESS", f"{host}:{port}", "a running openYuanrong data-system worker", f"{e}"[:200]
            ) from None
        _CLIENTS[(host, port)] = client
    return _CLIENTS[(host, port)]
