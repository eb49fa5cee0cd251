"""The deployment files: the ``Dockerfile`` (hadolint-like rules: a pinned base, no ``latest``, a non-root user,
the project installed from its own files with numpy<2, ``GLOG_v=3``) and the KubeRay manifests in
``deploy/kuberay/``, checked against a pinned fragment of the ``ray.io/v1`` CRD schemas (the fields KubeRay
requires; no network) and with every ``oms`` command in them parsed by the CLI's own argument parser."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from oms_testing import ROOT
from openmindspore.cli.main import build_parser

KUBERAY = ROOT / "deploy" / "kuberay"

_CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "image": {"type": "string", "not": {"pattern": ":latest$"}},
        "volumeMounts": {
            "type": "array",
            "items": {"type": "object", "required": ["name", "mountPath"]},
        },
    },
}
_POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["containers"],
            "properties": {
                "containers": {"type": "array", "minItems": 1, "items": _CONTAINER},
                "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
            },
        }
    },
}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}  # rayStartParams values are strings
# pinned from KubeRay v1.5 (ray.io/v1 RayCluster spec, as used inside RayJob and RayService)
RAY_CLUSTER_SPEC = {
    "type": "object",
    "required": ["headGroupSpec"],
    "properties": {
        "rayVersion": {"type": "string", "pattern": r"^2\.60\.\d+$"},
        "authOptions": {"type": "object", "properties": {"mode": {"enum": ["disabled", "token"]}}},
        "headGroupSpec": {
            "type": "object",
            "required": ["template"],
            "properties": {"rayStartParams": _STR_MAP, "template": _POD_TEMPLATE},
        },
        "workerGroupSpecs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["groupName", "template"],
                "properties": {
                    "groupName": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 0},
                    "minReplicas": {"type": "integer", "minimum": 0},
                    "maxReplicas": {"type": "integer", "minimum": 0},
                    "rayStartParams": _STR_MAP,
                    "template": _POD_TEMPLATE,
                },
            },
        },
    },
}


def _resource(spec: dict[str, Any]) -> dict[str, Any]:
    """A ``ray.io/v1`` custom resource whose ``spec`` follows the schema ``spec``."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "ray.io/v1"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": spec,
        },
    }


SCHEMAS = {
    "RayJob": _resource(
        {
            "type": "object",
            "required": ["entrypoint", "rayClusterSpec"],
            "properties": {
                "entrypoint": {"type": "string"},
                "shutdownAfterJobFinishes": {"type": "boolean"},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "rayClusterSpec": RAY_CLUSTER_SPEC,
            },
        }
    ),
    "RayService": _resource(
        {
            "type": "object",
            "required": ["serveConfigV2", "rayClusterConfig"],
            "properties": {"serveConfigV2": {"type": "string"}, "rayClusterConfig": RAY_CLUSTER_SPEC},
        }
    ),
}

SERVICE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "v1"},
        "spec": {"type": "object", "required": ["selector", "ports"]},
    },
}


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    out = [(p, doc) for p in sorted(KUBERAY.glob("*.yaml")) for doc in yaml.safe_load_all(p.read_text()) if doc]
    assert out, "deploy/kuberay/ holds no manifest"
    return out


def pods(spec: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [g["template"]["spec"] for g in groups]


def parse_oms(command: str) -> Any:
    """Parse an ``oms ...`` command line with the CLI's own parser (argparse exits 2 on a bad one)."""
    words = shlex.split(command)
    assert words[0] == "oms", command
    args = build_parser().parse_args(words[1:])
    assert getattr(args, "func", None), f"not an oms command: {command}"
    return args


@pytest.mark.parametrize("path, doc", manifests(), ids=lambda v: v.name if isinstance(v, Path) else "")
def test_manifest_matches_the_pinned_crd_schema(path: Path, doc: dict[str, Any]):
    if doc.get("kind") == "Service":  # the plain Service in front of a RayService's OIP port
        jsonschema.validate(doc, SERVICE)
        return
    assert doc.get("kind") in SCHEMAS, f"{path.name}: kind {doc.get('kind')!r} is not RayJob or RayService"
    jsonschema.validate(doc, SCHEMAS[doc["kind"]])
    cluster = doc["spec"].get("rayClusterSpec") or doc["spec"]["rayClusterConfig"]
    assert cluster["authOptions"]["mode"] == "token"  # Ray 2.60: token authentication
    for pod in pods(cluster):
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert re.search(r":\d+\.\d+\.\d+$", c["image"]), f"{path.name}: unpinned image {c['image']}"


def test_rayjob_trains_with_an_oms_entrypoint_and_a_memory_backed_dev_shm():
    (job,) = [doc for _, doc in manifests() if doc["kind"] == "RayJob"]
    args = parse_oms(job["spec"]["entrypoint"])
    assert args.command == "train" and args.address is None  # the job submission sets RAY_ADDRESS
    assert (ROOT / args.config).is_file() and args.workers >= 2
    for pod in pods(job["spec"]["rayClusterSpec"]):
        volumes = {v["name"]: v for v in pod["volumes"]}
        (mount,) = [m for c in pod["containers"] for m in c["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert volumes[mount["name"]]["emptyDir"]["medium"] == "Memory"


def test_rayservice_serves_what_oms_serve_deploys():
    """Its Serve config imports the builders of ``openmindspore.serve.app`` with ``oms serve``'s own validated
    arguments; they build (here from ``builtin:identity`` instead of the cluster's volume) and the front end
    routes to the model application of the same config; the Service reaches the head pod's front-end port."""
    from ray.serve.schema import ServeDeploySchema

    (svc,) = [doc for _, doc in manifests() if doc["kind"] == "RayService"]
    config = yaml.safe_load(svc["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)  # Ray Serve's own schema of a Serve config file
    apps = {a["name"]: a for a in config["applications"]}
    assert config["proxy_location"] == "Disabled" and all(a["route_prefix"] is None for a in apps.values())
    (front,) = [a for a in apps.values() if a["import_path"] == "openmindspore.serve.app:frontend_app"]
    assert apps[front["args"]["model_app"]]["import_path"] == "openmindspore.serve.app:model_app"
    for app in apps.values():
        module, _, fn = app["import_path"].partition(":")
        builder = getattr(importlib.import_module(module), fn)
        built = builder({**app["args"], "source": "builtin:identity"})
        assert type(built).__name__ == "Application", built
    port = front["args"]["server"]["port"]
    head = svc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    (service,) = [doc for _, doc in manifests() if doc["kind"] == "Service"]
    assert service["spec"]["selector"].items() <= head["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == port
    assert port in [p["containerPort"] for c in head["spec"]["containers"] for p in c.get("ports", [])]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_follows_the_hadolint_rules():
    steps = dockerfile()
    froms = [a for i, a in steps if i == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", froms[0])
    assert not any("latest" in a for _, a in steps), "DL3007: never :latest"
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0"), "DL3002: the last USER must not be root"
    runs = " ".join(a for i, a in steps if i == "RUN")
    assert "apt-get install -y --no-install-recommends" in runs and "rm -rf /var/lib/apt/lists/*" in runs  # DL3015
    assert not re.search(r"\bsudo\b", runs), "DL3004: no sudo"
    assert re.search(r"""pip install ["']numpy<2["'] \.""", runs), "installs the project (.) with numpy<2"
    copies = [a for i, a in steps if i == "COPY"]
    assert any("pyproject.toml" in a for a in copies) and any(" src " in f" {a} " for a in copies)
    assert not any(i == "ADD" for i, _ in steps), "DL3020: COPY, not ADD"
    env = " ".join(a for i, a in steps if i == "ENV")
    assert "GLOG_v=3" in env
    assert [i for i, _ in steps].index("USER") > max(k for k, (i, _) in enumerate(steps) if i == "RUN")
    cmd = [a for i, a in steps if i == "CMD"]
    assert cmd and cmd[-1].startswith("[")  # DL3025: exec form
