"""The committed generated code must be what `make protos` produces from protos/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_is_up_to_date(tmp_path):
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos" / "kloset" / "v1").glob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", *protos],
        cwd=ROOT, check=True,
    )  # fmt: skip
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc produced nothing"
    stale = [str(p) for p in generated if (tmp_path / p).read_bytes() != (ROOT / p).read_bytes()]
    assert not stale, f"run `make protos` and commit: {stale}"


def test_enum_zero_values_are_unspecified():
    from kloset.v1 import garment_pb2, ingest_pb2

    assert garment_pb2.GarmentGroup.Name(0) == "GARMENT_GROUP_UNSPECIFIED"
    assert ingest_pb2.JobState.Name(0) == "JOB_STATE_UNSPECIFIED"
