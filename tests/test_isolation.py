"""What the suite assumes of its surroundings: nothing from the developer's shell reaches the tests' Settings."""

import os
import subprocess
import sys
from pathlib import Path

from kloset.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_settings_in_tests_are_the_documented_defaults():
    """Trivially true in a clean shell; the next test runs it with a stray KLOSET_TOP_K set."""
    assert os.environ.get("KLOSET_TOP_K") is None
    assert Settings().top_k == Settings.model_fields["top_k"].default


def test_a_stray_kloset_variable_in_the_shell_changes_nothing():
    env = {**os.environ, "KLOSET_TOP_K": "3", "KLOSET_FILTER_POLICY": "none"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{__file__}::test_settings_in_tests_are_the_documented_defaults"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 passed" in result.stdout
