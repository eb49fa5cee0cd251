"""Elastic options: validated on construction (every problem at once), resolved once into a new object."""

from __future__ import annotations

import dataclasses

import pytest

from openmindspore.elastic import ElasticOptions, Fault, ResolvedOptions, parse_fault
from openmindspore.errors import ConfigError
from openmindspore.validation import ConfigErrors


def test_every_problem_is_reported_at_once_with_its_flag_and_a_fix():
    with pytest.raises(ConfigErrors) as e:
        ElasticOptions(workers=2, min_workers=3, spares=-1, hang_timeout=0, placement="PAK", engine="rey", threads=0)
    flags = [p.field for p in e.value.problems]
    assert flags == ["--min-workers", "--spares", "--hang-timeout", "--placement", "--engine", "--threads"]
    msg = str(e.value)
    assert msg.startswith("elastic options has 6 problems: --min-workers=3 is invalid")
    assert "did you mean PACK?" in msg and "did you mean ray?" in msg and "omit it to use cores // workers" in msg


def test_a_single_problem_reads_as_before():
    with pytest.raises(ConfigError) as e:
        ElasticOptions(workers=2, comm="mccl", overlap=True)
    assert str(e.value) == (
        "--overlap='with --comm mccl' is invalid: expected --comm shm (MCCL's all-reduce runs inside MindSpore, "
        "asynchronously already); drop --overlap or use --comm shm"
    )
    assert ElasticOptions(workers=2, address="10.0.0.1:6379", overlap=True).effective_comm == "tcp"  # the default


def test_resolve_decides_the_auto_values_once_and_changes_nothing():
    asked = ElasticOptions(workers=4)
    run = asked.resolve(64)
    assert isinstance(run, ResolvedOptions) and not isinstance(asked, ResolvedOptions)
    assert (asked.min_workers, asked.spares, asked.comm, asked.threads) == (None, None, None, None)
    assert (run.min_workers, run.spares, run.comm) == (1, 4, "shm") and run.threads >= 1
    assert run.shard_optimizer and run.rebuildable and run.keeps_survivors
    assert run.resolve(64) == run  # resolving again gives the same options
    assert ElasticOptions(workers=2, spares=0, threads=3, min_workers=2).resolve(32).to_dict() == {
        **ElasticOptions(workers=2).to_dict(),
        "spares": 0,
        "threads": 3,
        "min_workers": 2,
        "comm": "shm",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.workers = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "sharded"),
    [({}, True), ({"overlap": True}, False), ({"comm": "mccl"}, False), ({"shard_optimizer": False}, False)],
)
def test_the_optimizer_is_sharded_only_with_shm_and_without_overlap(given, sharded):
    assert ElasticOptions(workers=2, **given).resolve(32).shard_optimizer is sharded


def test_resolve_reports_the_world_size_and_the_fault_ranks_together():
    opts = ElasticOptions(workers=3, faults=[parse_fault("kill", "2:5")])  # a list is taken as a tuple
    assert opts.faults == (Fault("kill", 2, 5),)
    with pytest.raises(ConfigErrors) as e:
        opts.resolve(32)
    assert [p.field for p in e.value.problems] == ["--workers", "--kill-worker-at"]
    assert "choose workers in [1, 2, 4, 8]" in str(e.value) and "a rank < workers=3" in str(e.value)


def test_from_dict_round_trips_and_names_an_unknown_key():
    run = ElasticOptions(workers=2, faults=(Fault("hang", 3, 1),), snapshot_every=4).resolve(32)
    assert ElasticOptions.from_dict(run.to_dict()).resolve(32) == run
    with pytest.raises(ConfigError, match="worker='2' is invalid: expected a known field name; did you mean workers"):
        ElasticOptions.from_dict({"worker": "2"})


def test_faults_are_checked_on_their_own():
    with pytest.raises(ConfigError, match="fault kind='crash'"):
        Fault("crash", 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--kill-worker-at='0:1'.*STEP >= 1"):
        parse_fault("kill", "0:1")
