"""`kloset config` and configuration errors, as a user meets them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kloset.cli.config import MASK, masked_url
from kloset.core.config import ConfigError, Settings, load_settings

KLOSET = str(Path(sys.executable).parent / "kloset")


def kloset(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_")}
    return subprocess.run([KLOSET, *args], env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_config_prints_every_setting_with_secrets_masked(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("k1\n")
    result = kloset(
        "config", "--json", KLOSET_API_KEYS="key-one,key-two", KLOSET_API_KEY="key-one", KLOSET_QDRANT_API_KEY="qk",
        KLOSET_REDIS_URL="rediss://default:hunter2@redis:6380/0", KLOSET_API_KEYS_FILE=str(keys), KLOSET_TOP_K="7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert set(config) == {f"KLOSET_{name.upper()}" for name in Settings.model_fields}
    assert config["KLOSET_API_KEYS"] == config["KLOSET_API_KEY"] == config["KLOSET_QDRANT_API_KEY"] == MASK
    assert config["KLOSET_REDIS_URL"] == f"rediss://default:{MASK}@redis:6380/0"
    assert config["KLOSET_TOP_K"] == 7 and config["KLOSET_API_KEYS_FILE"] == str(keys)
    for secret in ("key-one", "key-two", "qk", "hunter2"):
        assert secret not in result.stdout


def test_config_table_marks_what_was_left_at_its_default():
    result = kloset("config", KLOSET_TOP_K="7")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "(default)" not in lines["KLOSET_TOP_K"] and lines["KLOSET_TOP_K"].split()[1] == "7"
    assert lines["KLOSET_SEARCH_PORT"].endswith("(default)")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KLOSET_MAX_CONCURRENT_RPCS": "0"}, "KLOSET_MAX_CONCURRENT_RPCS='0'"),
        ({"KLOSET_LOG_FORMAT": "xml"}, "KLOSET_LOG_FORMAT='xml'"),
        ({"KLOSET_SEARCH_PORT": "http"}, "KLOSET_SEARCH_PORT='http'"),
        ({"KLOSET_TLS_CA": "/nowhere/ca.pem"}, "KLOSET_TLS_CA='/nowhere/ca.pem': no such file"),
        ({"KLOSET_STORE": "server"}, "KLOSET_STORE=server needs KLOSET_QDRANT_URL"),
        ({"KLOSET_MAX_TOP_K": "5"}, "KLOSET_TOP_K=10 is more than KLOSET_MAX_TOP_K=5 allows"),
        # Issue 17 (4): the queue's settings took any value, 0 and negative included.
        ({"KLOSET_MAX_DELIVERIES": "0"}, "KLOSET_MAX_DELIVERIES='0': Input should be greater than or equal to 1"),
        ({"KLOSET_CLAIM_IDLE_MS": "-5"}, "KLOSET_CLAIM_IDLE_MS='-5'"),
        ({"KLOSET_JOB_TTL_S": "0"}, "KLOSET_JOB_TTL_S='0'"),
        ({"KLOSET_RANK_NEIGHBOUR_NEAR": "0.5"}, "KLOSET_RANK_NEIGHBOUR_NEAR=0.5 is below KLOSET_RANK_NEIGHBOUR_FAR"),
        # Issue 18: the access log's mode and sampling, the bulk status cap.
        ({"KLOSET_ACCESS_LOG": "some"}, "KLOSET_ACCESS_LOG='some'"),
        ({"KLOSET_ACCESS_LOG_SAMPLE": "0"}, "KLOSET_ACCESS_LOG_SAMPLE='0'"),
        ({"KLOSET_MAX_JOB_IDS": "0"}, "KLOSET_MAX_JOB_IDS='0'"),
    ],
)
def test_a_bad_value_fails_at_start_naming_the_variable(env, named):
    for command in (["config"], ["serve", "--role", "search"]):
        result = kloset(*command, **env)
        assert result.returncode == 2
        assert result.stderr.startswith("kloset: bad configuration: ") and named in result.stderr


def test_a_bad_secret_is_reported_without_its_value(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError) as caught:
        load_settings(api_keys=12345, tls_cert=cert)  # a number where a string is wanted; a cert with no key
    assert "KLOSET_API_KEYS:" in str(caught.value) and "12345" not in str(caught.value)


def test_masked_url_keeps_everything_but_the_password():
    assert masked_url("redis://:pw@h:6379/0") == f"redis://:{MASK}@h:6379/0"
    assert masked_url("https://qdrant:6333") == "https://qdrant:6333"
    assert masked_url("redis://u:p@[::1]:1/2") == f"redis://u:{MASK}@[::1]:1/2"


def test_json_log_format_gives_one_json_object_per_line(tmp_path):
    import signal

    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_")}
    env = {**clean, "KLOSET_LOG_FORMAT": "json", "KLOSET_DATA_DIR": str(tmp_path), "KLOSET_INGEST_PORT": "0"}
    serve = subprocess.Popen([KLOSET, "serve", "--role", "ingest"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert serve.stdout.readline().startswith("kloset serving ingest")
    finally:
        serve.send_signal(signal.SIGTERM)
        _, stderr = serve.communicate(timeout=60)
    # TensorFlow's native (absl) start-up lines bypass Python logging; every Python log line is JSON
    assert " INFO kloset" not in stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert records and all({"asctime", "level", "logger", "message"} <= set(r) for r in records)
    assert any("ingest role listening" in r["message"] for r in records)
