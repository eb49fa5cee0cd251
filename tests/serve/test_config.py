"""Serving configs: batching, server and deploy options, the routes pushed to the front ends (no Ray cluster)."""

from __future__ import annotations

import json

import pytest

from openmindspore.errors import ConfigError
from openmindspore.serve.config import FLAGS, BatchingConfig, DeployConfig, Routes, ServeCommand, VersionConfig
from openmindspore.validation import ConfigErrors, validate

META = {
    "platform": "numpy",
    "kind": "identity",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
}


def test_batching_bad_values_and_misspelled_key():
    with pytest.raises(ConfigErrors) as e:
        validate(BatchingConfig, {"max_batch": 0, "max_delay_ms": -1, "max_queue": 1.5}, where="batching")
    assert [p.field for p in e.value.problems] == ["max_batch", "max_delay_ms", "max_queue"]
    assert str(e.value).startswith("batching has 3 problems: max_batch=0 is invalid: expected greater than or equal")
    with pytest.raises(ConfigError, match=r"max_dealy_ms=5 .*did you mean max_delay_ms\?"):
        validate(BatchingConfig, {"max_dealy_ms": 5})
    assert validate(BatchingConfig, {"max_batch": "8"}) == BatchingConfig(max_batch=8)


def test_server_and_deploy_arguments_are_validated_before_anything_starts():
    from openmindspore.serve.server import Server

    with pytest.raises(ConfigError, match=r"frontends=0 .*greater than or equal to 1"):
        Server(frontends=0)
    with pytest.raises(ConfigError, match=r"dispatch='handel' .*did you mean handle\?"):
        Server(dispatch="handel")  # type: ignore[arg-type]
    srv = Server(port=8123, frontends=2)
    assert srv.config.port == 8123 and srv.frontends == 2 and srv.dispatch == "direct"
    with pytest.raises(ConfigError, match=r"deploy has 2 problems: name='bad name!'.*batching\.max_queue=0"):
        srv.deploy("bad name!", "builtin:identity", batching={"max_queue": 0})  # raises before Ray is imported
    with pytest.raises(ConfigError, match=r"batching\.max_batc=4 .*did you mean max_batch\?"):
        srv.deploy("ok", "builtin:identity", batching={"max_batc": 4})


def test_cli_flags_are_named_in_errors():
    cmd = {
        "server": {"port": 70000, "frontends": 1},
        "deploy": {"name": "m", "replicas": 0, "batching": {"max_batch": 0, "max_delay_ms": 20_000}},
    }
    with pytest.raises(ConfigErrors) as e:
        validate(ServeCommand, cmd, where="oms serve", names=FLAGS)
    assert {p.field for p in e.value.problems} == {"--port", "--replicas", "--max-batch", "--max-delay-ms"}
    assert str(e.value).startswith("oms serve has 4 problems:")


def test_routes_survive_the_json_trip_to_the_front_ends():
    v = VersionConfig(app="oms.m.1", replicas=2, metadata=META, batching=BatchingConfig(max_batch=8), source="x")
    routes = Routes.model_validate({"models": {"m": {"default": "1", "versions": {"1": v.model_dump()}}}})
    routes.models["pending"] = routes.models["m"].model_copy(update={"default": None})
    wire = json.loads(json.dumps(routes.routed().model_dump(mode="json")))  # what Ray Serve hands to reconfigure
    back = Routes.model_validate(wire)
    assert list(back.models) == ["m"] and back.models["m"].versions["1"] == v and v.concurrency == 2
    wire["models"]["m"]["versions"]["1"]["replica"] = 3
    with pytest.raises(ValueError, match="replica"):
        Routes.model_validate(wire)


def test_route_table_applies_typed_routes_and_reports_removed_versions():
    from openmindspore.serve.metrics import ServeMetrics
    from openmindspore.serve.protocol import ProtocolError
    from openmindspore.serve.routes import RouteTable

    def routes(default: str, **versions: VersionConfig) -> Routes:
        return Routes.model_validate({"models": {"m": {"default": default, "versions": versions}}})

    v1 = VersionConfig(app="oms.m.1", replicas=1, metadata=META)
    v2 = VersionConfig(app="oms.m.2", replicas=1, metadata=META, batching=BatchingConfig(max_batch=4))
    table = RouteTable(ServeMetrics())
    assert table.apply(routes("1", **{"1": v1})) == []
    first = table.lookup("m", None)
    assert first.version == "1" and first.batcher.max_batch == 32 and [s.shape for s in first.inputs] == [(4,)]
    removed = table.apply(routes("2", **{"1": v1.model_copy(update={"replicas": 3}), "2": v2}))
    assert removed == [] and table.lookup("m", "1") is first and first.batcher.concurrency == 3  # updated in place
    assert table.lookup("m", None).version == "2" and table.lookup("m", None).batcher.max_batch == 4
    removed = table.apply(routes("2", **{"2": v2}))
    assert removed == [first] and table.describe()["m"]["versions"] == ["2"]
    with pytest.raises(ProtocolError, match="no version '1'"):
        table.lookup("m", "1")
    assert [r.version for r in table.apply(Routes())] == ["2"] and table.models == {}


def test_deploy_config_defaults():
    d = validate(DeployConfig, {"name": "digits"})
    assert (d.version, d.replicas, d.batching, d.activate, d.inflight_per_replica) == (
        None,
        1,
        BatchingConfig(),
        True,
        1,
    )
