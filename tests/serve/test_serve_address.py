"""``oms serve --address`` on a cluster it joined (``ray start --head``, token authentication) deletes only its own
Serve applications when it stops: another user's application on the same cluster keeps running."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time

import pytest
from ray_cluster_testing import kill_sessions, ray_env, ray_script, ray_start

from oms_testing import free_port, kill_session, oms_command

pytestmark = pytest.mark.distributed

OTHER_USER = """
    import sys, ray
    from ray import serve
    ray.init(address=sys.argv[1], log_to_driver=False)
    serve.start(proxy_location="Disabled")

    @serve.deployment
    class Other:
        def __call__(self):
            return "other"

    serve.run(Other.bind(), name="other-user", route_prefix=None)
"""
STATUS = """
    import json, sys, ray
    from ray import serve
    ray.init(address=sys.argv[1], log_to_driver=False)
    print(json.dumps({name: str(app.status).split(".")[-1] for name, app in serve.status().applications.items()}))
"""


@pytest.fixture(scope="module")
def head():
    port, env = free_port(), ray_env()
    session = ray_start(["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"], env)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        kill_sessions([session])


def _apps(address: str, env: dict[str, str]) -> dict[str, str]:
    proc = ray_script(STATUS, env, address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_shutdown_deletes_only_its_own_applications(head):
    address, env = head
    other = ray_script(OTHER_USER, env, address)
    assert other.returncode == 0, other.stderr[-3000:]
    port = free_port()
    p = subprocess.Popen(
        oms_command("serve", "builtin:identity", "--address", address, "--port", str(port), "--json"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not select.select([p.stdout], [], [], 1.0)[0]:
            assert p.poll() is None and time.monotonic() < deadline, (p.stderr.read() if p.stderr else "")[-3000:]
        assert p.stdout is not None
        info = json.loads(p.stdout.readline())
        assert info["model"] == "identity"
        apps = _apps(address, env)
        assert {"other-user", f"oms-frontend-{port}", f"oms-{port}.identity.1"} <= set(apps), apps
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=180) == 0
        err = p.stderr.read() if p.stderr else ""
    finally:
        kill_session(p.pid)
    assert f"oms: joined the Ray cluster at {address} (--address): 1 node" in err
    apps = _apps(address, env)
    assert apps.get("other-user") == "RUNNING", apps
    assert not [a for a in apps if a.startswith("oms")], apps
