"""Serving configuration: validated pydantic models for the server, a deployment, batching and the routes.

Every value the user or another layer hands to serving is one of these models, validated with
:func:`openmindspore.validation.validate` (every problem at once, did-you-mean for a misspelled key):

- ``ServerConfig``: where the OIP front ends listen (REST, gRPC), how they reach replicas, and their security and
  limits: bearer token, TLS, request size and time limits (``Server(...)``);
- ``DeployConfig``: one model version's name, replicas, slots and ``BatchingConfig`` (``Server.deploy``);
- ``ServeCommand``: both of them, as ``oms serve`` sets them from its flags;
- ``Routes`` (``ModelRoutes`` -> ``VersionConfig``): the routing table ``Server`` pushes to the front ends
  as their Ray Serve ``user_config`` (plain JSON on the wire, validated again on arrival).

``FLAGS`` maps ``ServeCommand``'s fields to the ``oms serve`` flags that set them, so the CLI's errors
name the flag.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BatchingConfig",
    "DeployConfig",
    "Dispatch",
    "FLAGS",
    "ModelRoutes",
    "Routes",
    "ServeCommand",
    "ServerConfig",
    "VersionConfig",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _check_name(v: str) -> str:
    if not _NAME.match(v):
        raise ValueError("1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)")
    return v


#: a model or version name: it appears in URLs and in Ray Serve application names
Name = Annotated[str, AfterValidator(_check_name)]


def _readable_file(v: str | None) -> str | None:
    if v is not None and not Path(v).expanduser().is_file():
        raise ValueError("an existing file")
    return None if v is None else str(Path(v).expanduser().resolve())


def _token_file(v: str | None) -> str | None:
    v = _readable_file(v)
    if v is not None and not Path(v).read_text().strip():
        raise ValueError("a file holding the token (it is empty)")
    return v


#: a path to an existing file (made absolute: front ends read it in their own processes)
FilePath = Annotated[str | None, AfterValidator(_readable_file)]
#: ``direct``: batches go straight to replicas (a local Unix-socket channel on the same node, else a Ray actor call);
#: ``actor``: always a Ray actor call to the replica; ``handle``: through Ray Serve's ``DeploymentHandle`` router
Dispatch = Literal["direct", "actor", "handle"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchingConfig(_Config):
    """``max_batch`` samples per batch, ``max_delay_ms`` bound on waiting, ``max_queue`` samples queued."""

    max_batch: int = Field(default=32, ge=1, description="samples per dynamic batch (1 disables batching)")
    max_delay_ms: float = Field(default=2.0, ge=0, le=10_000, description="longest wait for a batch to fill")
    max_queue: int = Field(default=1024, ge=1, description="queued samples before answering 429")


class ServerConfig(_Config):
    """Where the front ends listen (``host:port``) and the engine they run on (``address``, ``num_cpus``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    address: str | None = Field(default=None, description="HOST:PORT of a running Ray cluster (None: an embedded one)")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of the embedded local cluster")
    retry_timeout_s: float = Field(
        default=60.0, gt=0, description="how long a batch is retried while replicas are replaced"
    )
    frontends: int = Field(default=1, ge=1, le=64, description="HTTP front-end processes sharing the port")
    dispatch: Dispatch = "direct"
    grpc_port: int | None = Field(default=None, ge=1, le=65535, description="OIP gRPC port (None: REST only)")
    auth_token_file: Annotated[str | None, AfterValidator(_token_file)] = Field(
        default=None, description="file holding the bearer token every request must carry (None: no auth)"
    )
    max_request_mb: float = Field(default=64.0, gt=0, le=4096, description="largest request body (413 above)")
    request_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="longest wait for an answer (504)")
    tls_cert: FilePath = Field(default=None, description="PEM certificate: serve HTTPS and gRPC over TLS")
    tls_key: FilePath = Field(default=None, description="PEM private key of tls_cert")

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key are given together (TLS needs both)")
        if self.grpc_port is not None and self.grpc_port == self.port:
            raise ValueError(f"grpc_port differs from port ({self.port}): REST and gRPC listen on their own ports")
        return self

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * (1 << 20))

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


class DeployConfig(_Config):
    """One model version to load: ``name`` in URLs, ``replicas`` processes of ``inflight_per_replica`` slots."""

    name: Name
    version: Name | None = Field(default=None, description="None: the next free number")
    replicas: int = Field(default=1, ge=1)
    batching: BatchingConfig = Field(default_factory=lambda: BatchingConfig())
    activate: bool = Field(default=True, description="switch traffic to it once its replicas are up")
    inflight_per_replica: int = Field(default=1, ge=1, description="batches sent to one replica at a time")
    replica_cpus: float = Field(default=0.0, ge=0, description="CPUs reserved per replica (0: no reservation)")


class VersionConfig(_Config):
    """What a front end needs to route one loaded version: its Serve application and the predictor's metadata
    (``inputs``/``outputs`` with a -1 batch dimension, ``platform``, ``kind``, ...)."""

    app: str
    deployment: str = "ModelReplica"
    replicas: int = Field(ge=1)
    inflight_per_replica: int = Field(default=1, ge=1)
    batching: BatchingConfig = Field(default_factory=lambda: BatchingConfig())
    metadata: dict[str, Any]
    source: str = ""

    @property
    def concurrency(self) -> int:
        """Batches in flight at once: one per replica slot."""
        return self.replicas * self.inflight_per_replica


class ModelRoutes(BaseModel):
    """A served model: its loaded versions and the one that takes default traffic (None until routed)."""

    model_config = ConfigDict(extra="forbid")

    default: str | None = None
    versions: dict[str, VersionConfig] = Field(default_factory=dict)


class Routes(BaseModel):
    """The routing table: model name -> ``ModelRoutes``."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelRoutes] = Field(default_factory=dict)

    def routed(self) -> Routes:
        """The models that have a default version (what the front ends serve)."""
        return Routes(models={n: m for n, m in self.models.items() if m.default is not None})


class ServeCommand(_Config):
    """Everything ``oms serve`` sets, validated together: the server and the one version it deploys."""

    server: ServerConfig
    deploy: DeployConfig


#: ``ServeCommand`` field -> the ``oms serve`` flag that sets it (for error messages that name the flag)
FLAGS: dict[str, str] = {
    "server.host": "--host",
    "server.port": "--port",
    "server.address": "--address",
    "server.num_cpus": "--num-cpus",
    "server.frontends": "--frontends",
    "server.grpc_port": "--grpc-port",
    "server.auth_token_file": "--auth-token-file",
    "server.max_request_mb": "--max-request-mb",
    "server.request_timeout_s": "--request-timeout-s",
    "server.tls_cert": "--tls-cert",
    "server.tls_key": "--tls-key",
    "deploy.name": "--name",
    "deploy.replicas": "--replicas",
    "deploy.replica_cpus": "--replica-cpus",
    "deploy.batching.max_batch": "--max-batch",
    "deploy.batching.max_delay_ms": "--max-delay-ms",
    "deploy.batching.max_queue": "--max-queue",
}
