"""The one seam to the distributed execution engine (Ray by default; openYuanrong experimental)."""

from openmindspore.engine.base import ActorRef, Engine, EngineError, Outcome
from openmindspore.errors import ConfigError

__all__ = ["ActorRef", "Engine", "EngineError", "Outcome", "get_engine"]


def get_engine(name: str = "ray") -> Engine:
    """``ray`` (default) or ``yuanrong`` (experimental, needs the ``yr`` package)."""
    if name == "ray":
        from openmindspore.engine.ray_engine import RayEngine

        return RayEngine()
    if name in ("yuanrong", "yr", "openyuanrong"):
        from openmindspore.engine.yr_engine import YuanrongEngine

        return YuanrongEngine()
    raise ConfigError("--engine", name, "one of ray, yuanrong")
