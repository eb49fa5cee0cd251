"""A real 2-node Ray cluster on this host, made by running the multi-node recipe of docs/distributed.md as
written (token authentication, ``ray start --head`` + ``ray start --address``): the recipe's ``oms train``
trains across it; ``$RAY_ADDRESS`` is joined like ``--address``; the default ``--spares`` fit the free CPUs;
too few CPUs for ``--workers`` or ``--spares`` is one line and exit 2, without waiting for a reservation."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ray_cluster_testing import RAY, WORKER_PORTS, kill_sessions, ray_env, ray_start

from oms_testing import ROOT, free_port, kill_session, run_oms

pytestmark = pytest.mark.distributed

DOC = ROOT / "docs" / "distributed.md"
MARK = "<!-- multi-node recipe -->"


def recipe() -> list[str]:
    """The commands of the recipe's code block (comments and blank lines dropped)."""
    text = DOC.read_text()
    assert MARK in text, "docs/distributed.md lost its multi-node recipe"
    block = text.split(MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Runs the recipe: its exports, both ``ray start``s (the port replaced by a free one outside Ray's worker
    range, HEAD_IP by this host), ``ray get-auth-token`` (its output is THE_TOKEN); collects its ``oms``
    commands. Teardown kills the nodes' sessions instead of the recipe's ``ray stop`` (which would stop every
    Ray on this shared host)."""
    port = free_port()
    assert port not in WORKER_PORTS
    env = ray_env()
    env.pop("RAY_AUTH_MODE")  # the recipe sets it
    sessions: list[int] = []
    token, oms = "", []
    try:
        for line in recipe():
            line = line.replace("HEAD_IP", "127.0.0.1").replace("6380", str(port)).replace("THE_TOKEN", token)
            words = shlex.split(line)
            if words[0] == "export":
                key, value = words[1].split("=", 1)
                env[key] = value
            elif words[:2] == ["ray", "start"]:
                sessions.append(ray_start(words[2:], env))
            elif words[:2] == ["ray", "get-auth-token"]:
                token = subprocess.run([RAY, *words[1:]], env=env, capture_output=True, text=True, check=True).stdout
                token = token.strip().splitlines()[-1]
            elif words[0] == "oms":
                oms.append(words[1:])
            else:
                assert words[:2] == ["ray", "stop"], f"a recipe command this test does not know: {line}"
        assert env.get("RAY_AUTH_MODE") == "token" and token and len(sessions) == 2 and oms
        yield {"address": f"127.0.0.1:{port}", "env": env, "oms": oms, "tmp": tmp_path_factory.mktemp("cluster")}
    finally:
        kill_sessions(sessions)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("oms ")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_recipe_trains_across_two_nodes(cluster):
    (args,) = cluster["oms"]
    out = cluster["tmp"] / "recipe"
    args = [str(out) if a == "runs/multinode" else a for a in args]
    proc = run_oms(*args, env=cluster["env"], timeout=480)
    assert proc.returncode == 0, proc.stderr[-3000:]
    joined = f"oms: joined the Ray cluster at {cluster['address']} (--address): 2 nodes, 4 CPUs"
    assert joined in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 20 and summary["status"] in ("completed", "stopped")
    assert summary["elastic"]["placement"] == "SPREAD" and summary["elastic"]["address"] == cluster["address"]


HOLD = """
    import sys, time, ray
    ray.init(address=sys.argv[1], log_to_driver=False)
    pg = ray.util.placement_group([{"CPU": 1}])
    ray.get(pg.ready())
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_ray_address_is_joined_and_default_spares_fit_the_free_cpus(cluster):
    """Another job holds 1 of the 4 CPUs: ``oms train`` under ``$RAY_ADDRESS`` (as ``ray job submit`` runs it)
    joins that cluster, says so, and fits its default spares (2) to the 3 free CPUs with a notice."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), cluster["address"]],
        env=cluster["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = {**cluster["env"], "RAY_ADDRESS": cluster["address"]}
        out = cluster["tmp"] / "fitted"
        cfg = str(ROOT / "examples" / "digits_mlp.yaml")
        proc = run_oms("train", cfg, "--workers", "2", "--max-steps", "3", "--json", "--out", str(out), env=env)
    finally:
        kill_session(holder.pid)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"oms: joined the Ray cluster at {cluster['address']} (RAY_ADDRESS): 2 nodes" in proc.stderr
    assert "oms: --spares 1 (fitted: the cluster has 3 free CPUs, 2 for the workers" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 3 and summary["world_size"] == 2


@pytest.mark.parametrize(
    "flags, expect",
    [
        (["--workers", "8"], r"--workers=8 is invalid: .*8 workers need 8 CPUs, \d of 4 CPUs free; choose workers in"),
        (["--workers", "2", "--spares", "5"], r"--spares=5 is invalid: .*7 needed, \d of 4 CPUs free; use --spares"),
    ],
)
def test_too_few_cpus_is_one_line_exit_2(cluster, flags, expect, tmp_path: Path):
    cfg = str(ROOT / "examples" / "digits_mlp.yaml")
    proc = run_oms(
        "train", cfg, *flags, "--address", cluster["address"], "--out", str(tmp_path / "r"), env=cluster["env"]
    )
    assert re.search(expect, _one_error_line(proc)), proc.stderr[-2000:]
    assert not (tmp_path / "r" / "summary.json").exists()
