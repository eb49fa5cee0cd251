"""The on-disk state of an active-learning run, written atomically so a killed run resumes exactly.

Layout of ``OUT``::

    OUT/state.json              the run: version, validated options, seeds, each seed's status
    OUT/seed_<S>/state.json     one seed: round, labelled ids and labels, pending queries, round rows
    OUT/labels.json             file oracle: every answer given so far ({pool id: label})
    OUT/queries.jsonl           file oracle: the open queries (one line per pool id)

Every file is replaced whole (temp file + fsync + rename), so a reader sees the state before or after
a round, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openmindspore.errors import ConfigError
from openmindspore.train.checkpoint import atomic_write

__all__ = ["VERSION", "SeedState", "read_json", "write_json", "load_run", "seed_dir"]

VERSION = 1


def write_json(path: Path, obj: Any) -> None:
    """Atomically replace ``path`` with ``obj`` as JSON."""
    atomic_write(Path(path), json.dumps(obj, sort_keys=True))


def read_json(path: Path, what: str) -> Any:
    """Parse ``path``; a torn or foreign file is a one-line :class:`ConfigError` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(
            "--out",
            str(Path(path).parent),
            f"a readable {what} ({Path(path).name}: {type(e).__name__})",
            "the file is corrupt: remove the directory or choose a new --out",
        ) from None


def seed_dir(out: Path, seed: int) -> Path:
    return Path(out) / f"seed_{int(seed)}"


@dataclass
class SeedState:
    """One seed's progress. ``pending`` are the queries of round ``round`` not yet answered; ``rows``
    the evaluated rounds (see :mod:`openmindspore.active.loop`)."""

    seed: int
    round: int = 0
    labeled: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    audit_pos: int = 0  # how far the audit stream has walked its order of the pool
    rows: list[dict] = field(default_factory=list)
    stop_preds: list[list[int]] = field(default_factory=list)  # the last models' stop-set predictions
    status: str = "running"  # running | waiting | done
    stopped_by: str | None = None
    full_pool_accuracy: float | None = None
    final: dict | None = None
    version: int = VERSION

    def save(self, out: Path) -> None:
        write_json(seed_dir(out, self.seed) / "state.json", asdict(self))

    @classmethod
    def load(cls, out: Path, seed: int) -> SeedState | None:
        path = seed_dir(out, seed) / "state.json"
        if not path.exists():
            return None
        data = read_json(path, "seed state")
        try:
            st = cls(**data)
        except TypeError:
            st = None
        if st is None or st.version != VERSION or st.seed != seed or len(st.labeled) != len(st.labels):
            raise ConfigError(
                "--out",
                str(path.parent),
                "a seed state written by this version of oms active",
                "the file is corrupt or foreign: remove the directory or choose a new --out",
            )
        return st


def load_run(out: Path) -> dict | None:
    """The run manifest in ``out`` (None when there is none)."""
    path = Path(out) / "state.json"
    if not path.exists():
        return None
    data = read_json(path, "run state")
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("config"), dict):
        raise ConfigError(
            "--out",
            str(out),
            "a run directory of this version of oms active",
            "state.json is corrupt or foreign: remove the directory or choose a new --out",
        )
    return data
