"""What ``oms serve`` deploys, as Serve application builders for a Serve config file (``serve deploy``, KubeRay's
``RayService`` ``serveConfigV2``; see deploy/kuberay/rayservice-serve.yaml).

Two applications per served model, as :class:`~openmindspore.serve.server.Server` makes them: the model version
(``import_path: openmindspore.serve.app:model_app``) and the OIP front end routing to it
(``openmindspore.serve.app:frontend_app``, ``args.model_app`` naming the first). ``args`` are those of
``oms serve``, validated together (:class:`~openmindspore.serve.config.ServeCommand`): ``source`` (run
directory, checkpoint, .mindir, ``builtin:...``), ``server`` (host, port, frontends, limits) and ``deploy``
(name, replicas, batching). Owns no state.
"""

from __future__ import annotations

from typing import Any

from openmindspore.errors import ConfigError
from openmindspore.serve.config import ModelRoutes, Routes, ServeCommand, VersionConfig
from openmindspore.serve.registry import ResolvedSource, resolve_source
from openmindspore.validation import validate

__all__ = ["frontend_app", "model_app"]


def _command(args: dict[str, Any]) -> tuple[ResolvedSource, ServeCommand]:
    if not isinstance(args, dict) or "source" not in args:
        raise ConfigError("args.source", None, "the run directory, checkpoint or builtin: model to serve")
    rest = {k: v for k, v in args.items() if k not in ("source", "model_app")}
    return resolve_source(args["source"]), validate(ServeCommand, rest, where="serve config args")


def model_app(args: dict[str, Any]) -> Any:
    """The model version's application: ``deploy.replicas`` model replicas of ``source``."""
    from openmindspore.serve.deployments import ModelReplica

    resolved, cmd = _command(args)
    d = cmd.deploy
    opts = ModelReplica.options(
        num_replicas=d.replicas,
        max_ongoing_requests=d.inflight_per_replica,
        ray_actor_options={"num_cpus": d.replica_cpus},
    )
    return opts.bind(resolved)


def frontend_app(args: dict[str, Any]) -> Any:
    """The OIP front end on ``server.host:server.port`` (on the head node) serving ``deploy.name`` from the model
    application named ``args.model_app``; the model's metadata is read here, once, from ``source``."""
    from openmindspore.serve.frontend import FRONTEND_ENV, FrontEnd
    from openmindspore.serve.registry import load_predictor

    resolved, cmd = _command(args)
    app = args.get("model_app")
    if not isinstance(app, str) or not app:
        raise ConfigError("args.model_app", app, "the name of the model's application in the same Serve config")
    d = cmd.deploy
    version = VersionConfig(
        app=app,
        replicas=d.replicas,
        metadata=load_predictor(resolved).metadata(),
        batching=d.batching,
        inflight_per_replica=d.inflight_per_replica,
        source=str(args["source"]),
    )
    routes = Routes(models={d.name: ModelRoutes(default="1", versions={"1": version})})
    opts = FrontEnd.options(
        num_replicas=cmd.server.frontends,
        user_config=routes.model_dump(mode="json"),
        ray_actor_options={
            "num_cpus": 0,
            "resources": {"node:__internal_head__": 0.001},
            "runtime_env": {"env_vars": FRONTEND_ENV},
        },
    )
    return opts.bind(cmd.server.model_dump(mode="json"))
