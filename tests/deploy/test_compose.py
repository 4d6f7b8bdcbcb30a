"""The compose files and the Dockerfile, checked statically: Docker cannot pull images on the build machines."""

import re
from pathlib import Path

import pytest
import yaml

from kloset.core.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
CLUSTER = yaml.safe_load((ROOT / "deploy" / "qdrant-cluster.yml").read_text())
KLOSET_ROLES = {"attribute", "search", "ingest", "worker"}
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+[\w.-]*$")  # an exact version, never latest or a bare major


def _env(service: dict) -> dict:
    env = service.get("environment", {})
    return dict(item.split("=", 1) for item in env) if isinstance(env, list) else env


def test_grpc_ports_are_published_on_loopback_only_unless_asked():
    """Issue 17 (7): keys travel as bearer tokens over plaintext gRPC, so the host publishes the ports on its
    loopback only by default."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    published = {name: s.get("ports", []) for name, s in services.items() if name in ("search", "ingest")}
    assert published == {"search": ["${KLOSET_PUBLISH_SEARCH:-127.0.0.1:50052}:50052"],
                         "ingest": ["${KLOSET_PUBLISH_INGEST:-127.0.0.1:50053}:50053"]}  # fmt: skip


def test_every_service_has_a_pinned_image_or_the_local_build():
    for name, service in COMPOSE["services"].items():
        if name in KLOSET_ROLES:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        else:
            assert PINNED.match(service["image"]), f"{name}: {service['image']} is not pinned"
    assert COMPOSE["services"]["qdrant"]["image"].endswith("-unprivileged")


def test_every_service_has_a_healthcheck_a_restart_policy_and_healthy_dependencies():
    for name, service in COMPOSE["services"].items():
        assert service["healthcheck"]["test"], name
        assert service["restart"] in ("unless-stopped", "always", "on-failure"), name
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must say the condition"
        for dependency, how in depends.items():
            assert how == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert dependency in COMPOSE["services"]


def test_qdrant_is_probed_without_curl():
    assert ":> /dev/tcp/127.0.0.1/6333" in " ".join(COMPOSE["services"]["qdrant"]["healthcheck"]["test"])


def test_state_lives_on_named_volumes():
    named = set(COMPOSE["volumes"])
    for name in ("redis", "qdrant", "search", "ingest", "worker"):
        mounts = COMPOSE["services"][name]["volumes"]
        assert any(m.split(":", 1)[0] in named for m in mounts), name
    assert "--appendonly" in COMPOSE["services"]["redis"]["command"]


def test_workers_scale():
    worker = COMPOSE["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


@pytest.mark.parametrize("document", [COMPOSE, CLUSTER], ids=["compose", "cluster"])
def test_every_kloset_variable_set_is_one_kloset_reads(document):
    known = {env_name(field) for field in Settings.model_fields}
    for name, service in document["services"].items():
        for variable in _env(service):
            if variable.startswith("KLOSET_"):
                assert variable in known, f"{name} sets {variable}, which kloset does not read"
    assert _env(COMPOSE["services"]["search"])  # the anchors did give the roles their environment


def test_the_cluster_has_three_nodes_and_a_replicated_sharded_collection():
    nodes = {n: s for n, s in CLUSTER["services"].items() if s.get("image", "").startswith("qdrant/")}
    assert len(nodes) == 3
    commands = [" ".join(s["command"]) for s in nodes.values()]
    assert sum("--uri" in c for c in commands) == 1 and sum("--bootstrap" in c for c in commands) == 2
    for service in nodes.values():
        assert service["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert service["healthcheck"]["test"] and service["volumes"]
    for role in ("search", "worker"):
        env = _env(CLUSTER["services"][role])
        assert int(env["KLOSET_QDRANT_SHARDS"]) >= 3 and int(env["KLOSET_QDRANT_REPLICATION"]) == 2
        Settings(qdrant_url=env["KLOSET_QDRANT_URL"], qdrant_write_consistency=env["KLOSET_QDRANT_WRITE_CONSISTENCY"])


def test_the_dockerfile_is_multi_stage_non_root_and_carries_the_models():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^COPY models ", text, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "var"} <= set(ignored)
