"""Issue 17 (7): scoped API keys over real gRPC. A key opens only what its scopes allow; a plain key (as before
scopes) opens everything; PERMISSION_DENIED names the scope missing."""

import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from kloset.services.auth import METHOD_SCOPES

from kloset.core.config import Role
from kloset.core.garments.images import encode_jpeg
from kloset.v1 import attribute_pb2, ingest_pb2, ingest_pb2_grpc, search_pb2
from tests.conftest import role_settings

KLOSET = str(Path(sys.executable).parent / "kloset")
KEYS = "read:reader-key,write:writer-key,read+write:loader-key,admin:admin-key,plain-key"


@pytest.fixture(scope="module")
def ingest(tmp_path_factory, tiny_model_dir):
    from kloset.program import Program

    settings = role_settings(tmp_path_factory.mktemp("scopes"), tiny_model_dir, workers=0, api_keys=KEYS)
    program = Program(settings, frozenset({Role.INGEST}))
    program.start()
    port = next(s.port for s in program.servers if s.name == Role.INGEST.value)
    yield ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    program.stop()


def calls(stub, key: str) -> dict[str, grpc.StatusCode]:
    """What a read, a write and an admin call answer with this key."""
    auth = [("authorization", f"Bearer {key}")]
    image = encode_jpeg(np.full((40, 30, 3), 90, dtype=np.uint8))
    submit = ingest_pb2.SubmitRequest(image=image, item_id=f"s-{key}")
    attempts = {
        "read": lambda: stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10, metadata=auth),
        "write": lambda: stub.Submit(submit, timeout=10, metadata=auth),
        "admin": lambda: stub.ListDeadLetters(ingest_pb2.ListDeadLettersRequest(), timeout=10, metadata=auth),
    }
    codes = {}
    for scope, attempt in attempts.items():
        try:
            attempt()
            codes[scope] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            codes[scope] = exc.code()
            if exc.code() is grpc.StatusCode.PERMISSION_DENIED:
                assert f"lacks the '{scope}' scope" in exc.details() and key not in exc.details()
    return codes


OK, DENIED = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("reader-key", {"read": OK, "write": DENIED, "admin": DENIED}),
        ("writer-key", {"read": DENIED, "write": OK, "admin": DENIED}),
        ("loader-key", {"read": OK, "write": OK, "admin": DENIED}),
        ("admin-key", {"read": DENIED, "write": DENIED, "admin": OK}),
        ("plain-key", {"read": OK, "write": OK, "admin": OK}),  # a key without scopes: as before, everything
    ],
)
def test_each_key_opens_what_its_scopes_allow(ingest, key, expected):
    assert calls(ingest, key) == expected


def test_the_scoped_key_itself_is_what_a_client_sends(ingest):
    """`read:reader-key` is the key `reader-key` with the read scope: the entry as a whole is no key."""
    with pytest.raises(grpc.RpcError) as info:
        ingest.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10,
                             metadata=[("authorization", "Bearer read:reader-key")])  # fmt: skip
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_every_method_of_kloset_v1_has_a_scope():
    methods = {
        f"{service.full_name}/{method.name}"
        for module in (attribute_pb2, search_pb2, ingest_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods == set(METHOD_SCOPES)
    assert {METHOD_SCOPES[m] for m in methods} == {"read", "write", "admin"}


def test_an_unknown_scope_stops_the_start_without_showing_the_key():
    result = subprocess.run([KLOSET, "config"], env={"KLOSET_API_KEYS": "raed:secret-value", "PATH": ""},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "unknown scope 'raed'" in result.stderr and "secret-value" not in result.stderr
