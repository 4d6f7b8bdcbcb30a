"""Roles in separate servers (as in docker-compose) and `kloset serve` as a real process."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from kloset.core.config import Role, parse_roles
from kloset.program import Program
from tests.conftest import client_env, role_settings
from tests.waiting import wait_until

KLOSET = str(Path(sys.executable).parent / "kloset")


def test_parse_roles():
    assert parse_roles("all") == frozenset(Role)
    assert parse_roles("search, worker") == {Role.SEARCH, Role.WORKER}


def test_search_and_workers_use_a_separate_attribute_service(
    tmp_path, tiny_model_dir, tiny_segmenter_dir, sample_catalog
):
    attribute = Program(role_settings(tmp_path / "a", tiny_model_dir, tiny_segmenter_dir), frozenset({Role.ATTRIBUTE}))
    attribute.start()
    try:
        addr = f"127.0.0.1:{attribute.servers[0].port}"
        rest = Program(
            role_settings(tmp_path / "b", tmp_path / "no-model-here", attribute_addr=addr),
            frozenset({Role.SEARCH, Role.INGEST, Role.WORKER}),
        )
        rest.start()  # loads no model: it would fail, since model_dir does not exist
        try:
            env = client_env(rest)
            env["KLOSET_ATTRIBUTE_ADDR"] = addr
            out = subprocess.run(
                [KLOSET, "ingest", sample_catalog, "--limit", "4", "--wait", "--json"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert json.loads(out.stdout)["done"] == 4, out.stderr
            found = subprocess.run(
                [KLOSET, "search", "--item", "0001/top", "--json"], env=env, capture_output=True, text=True, timeout=60
            )
            assert found.returncode == 0, found.stderr
        finally:
            rest.stop()
    finally:
        attribute.stop()


def test_serve_process_answers_health_and_stops_gracefully_on_sigterm(tmp_path, tiny_model_dir, tiny_segmenter_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_")}
    ports = {"ATTRIBUTE": 0, "SEARCH": 0, "INGEST": 0, "WORKER": 0}
    for role in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports[role] = s.getsockname()[1]
    for role, port in ports.items():
        env[f"KLOSET_{role}_PORT"] = str(port)
        env[f"KLOSET_{role}_ADDR"] = f"127.0.0.1:{port}"
    env.update(
        KLOSET_DATA_DIR=str(tmp_path / "var"),
        KLOSET_MODEL_DIR=str(tiny_model_dir),
        KLOSET_SEGMENTER_DIR=str(tiny_segmenter_dir),
        KLOSET_WORKERS="1",
    )
    server = subprocess.Popen([KLOSET, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        last: list[subprocess.CompletedProcess] = []

        def healthy() -> bool:
            assert server.poll() is None, f"kloset serve exited {server.returncode}: {server.stdout.read()[-2000:]}"
            last[:] = [subprocess.run([KLOSET, "health"], env=env, capture_output=True, text=True)]
            return last[0].returncode == 0

        wait_until(healthy, 120, what="kloset serve to report healthy", interval_s=0.25,
                   detail=lambda: last[0].stdout + last[0].stderr if last else "no answer")  # fmt: skip
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert not (tmp_path / "var" / "redis" / "redis.sock").exists()  # embedded redis-server stopped too
    finally:
        if server.poll() is None:
            server.kill()


def test_a_port_in_use_is_a_clear_start_up_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = role_settings(tmp_path, tmp_path / "no-model", search_port=port, attribute_addr="127.0.0.1:9")
        program = Program(settings, frozenset({Role.SEARCH}))
        try:
            program.start()
        except OSError as exc:
            assert f"cannot listen on 127.0.0.1:{port} for the search role" in str(exc)
        else:
            program.stop()
            raise AssertionError("search role started on a port that was taken")
