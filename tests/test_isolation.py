"""Every isolation guard, shown to hold by a function that tries to break it."""

from __future__ import annotations

import glob
import os
import time

import httpx
import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching workers to their own ids needs root (CI runs as root)")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    from .conftest import Cluster

    cluster = Cluster(tmp_path_factory.mktemp("isolation"))
    cluster.configure({
        "guards": {"source": "guards", "workers": 2, "timeout": "2s", "memory": "96MB",
                   "environment": {"GREETING": "declared"}},
        "secret": {"source": "secret", "workers": 1},
    })
    cluster.start("up", env={"REDIS_PASSWORD": "hunter2", "BOOTHBY_TRANSPORT__REDIS__PASSWORD": "hunter2"})
    yield cluster
    cluster.stop()


def attempt(cluster, **query):
    response = httpx.get(f"{cluster.base_url}/guards", params=query, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def function_root(name):
    [root] = [path for path in glob.glob(f"/tmp/boothby-{name}-*") if os.path.isdir(os.path.join(path, "code"))][-1:]
    return root


def test_config_file_unreadable(guarded):
    result = attempt(guarded, **{"try": "read", "path": str(guarded.config)})
    assert result["ok"] is False
    assert result["code"] in ("ERR_ACCESS_DENIED", "EACCES")


def test_other_function_files_unreadable(guarded):
    path = os.path.join(function_root("secret"), "code", "secret.txt")
    assert os.path.exists(path)
    result = attempt(guarded, **{"try": "read", "path": path})
    assert result["ok"] is False
    assert result["code"] in ("ERR_ACCESS_DENIED", "EACCES")


def test_environment_scrubbed(guarded):
    environment = attempt(guarded, **{"try": "env"})["value"]
    assert environment["GREETING"] == "declared"
    assert "REDIS_PASSWORD" not in environment
    assert "BOOTHBY_TRANSPORT__REDIS__PASSWORD" not in environment
    assert "hunter2" not in str(environment)
    assert not [name for name in environment if name.startswith("BOOTHBY_") and name not in {
        "BOOTHBY_SOCKET", "BOOTHBY_READY_FD", "BOOTHBY_SCHEMAS", "BOOTHBY_FUNCTION_DIR", "BOOTHBY_HANDLER",
        "BOOTHBY_FUNCTION_NAME", "BOOTHBY_FUNCTION_VERSION", "BOOTHBY_MEMORY_MB", "BOOTHBY_CONCURRENCY",
        "BOOTHBY_TIMEOUT_MS", "BOOTHBY_EXIT_ON_DISCONNECT"}]


def test_child_process_denied(guarded):
    result = attempt(guarded, **{"try": "spawn"})
    assert result["ok"] is False
    assert result["code"] == "ERR_ACCESS_DENIED"


def test_fork_bomb_stopped_at_first_spawn(guarded):
    result = attempt(guarded, **{"try": "fork-bomb"})
    assert result["ok"] is False
    assert result["code"] == "ERR_ACCESS_DENIED"


def test_write_outside_tmp_denied(guarded, tmp_path):
    target = tmp_path / "escaped.txt"
    result = attempt(guarded, **{"try": "write", "path": str(target)})
    assert result["ok"] is False
    assert not target.exists()


def test_write_inside_tmp_allowed(guarded):
    result = attempt(guarded, **{"try": "write-tmp"})
    assert result == {"ok": True, "value": "scratch"}


@needs_root
def test_each_worker_has_its_own_uid(guarded):
    identities = {tuple(attempt(guarded, **{"try": "whoami"})["value"].values()) for _ in range(8)}
    uids = {uid for uid, _, _ in identities}
    assert 0 not in uids
    assert len({gid for _, gid, _ in identities}) == 1
    assert len(uids) == len({pid for _, _, pid in identities})


@needs_root
def test_signal_to_other_process_denied(guarded):
    other = int(httpx.get(f"{guarded.base_url}/secret", timeout=10).text)
    for target in (other, guarded.processes[0].pid):
        result = attempt(guarded, **{"try": "signal", "pid": str(target)})
        assert result["ok"] is False
        assert result["code"] == "EPERM"
    assert httpx.get(f"{guarded.base_url}/secret", timeout=10).text == str(other)


@needs_root
def test_other_worker_socket_unreachable(guarded):
    sockets = glob.glob(os.path.join(function_root("secret"), "sockets", "*", "rpc.sock"))
    assert sockets
    result = attempt(guarded, **{"try": "connect", "path": sockets[0]})
    assert result["ok"] is False
    assert result["code"] in ("EACCES", "ERR_ACCESS_DENIED")


def test_memory_limit_kills_and_names_limit(guarded):
    response = httpx.get(f"{guarded.base_url}/guards", params={"try": "allocate"}, timeout=30)
    assert response.status_code == 502
    body = response.json()
    assert body["limit"] == "memory"
    assert "96 MiB" in body["message"]
    assert attempt(guarded, **{"try": "nothing"})["ok"] is True


def test_infinite_loop_killed_at_deadline(guarded):
    started = time.monotonic()
    response = httpx.get(f"{guarded.base_url}/guards", params={"try": "loop"}, timeout=30)
    assert response.status_code == 504
    assert response.json()["limit"] == "time"
    assert time.monotonic() - started < 5
    assert attempt(guarded, **{"try": "nothing"})["ok"] is True
