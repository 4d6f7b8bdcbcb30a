"""README against the code: every command has a CLI row, every RPC an API row, every figure block is what
`kloset docs` writes from the benchmark outputs."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kloset.cli.docs import ROOT, rendered
from kloset.cli.main import build_parser
from kloset.v1 import attribute_pb2, ingest_pb2, search_pb2

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
KLOSET = str(Path(sys.executable).with_name("kloset"))


def section(title: str) -> str:
    """README's text from the heading `## title` to the next `## ` heading."""
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def command_paths(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every command as typed: subcommands, and a leading choice positional (`dlq list`, `train segmenter`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [path for name, sub in action.choices.items() for path in command_paths(sub, f"{prefix} {name}")]
    leading = next((a for a in parser._actions if not a.option_strings and a.dest != "help"), None)
    if leading is not None and leading.choices:
        return [f"{prefix} {choice}".strip() for choice in leading.choices]
    return [prefix.strip()]


def test_every_command_has_a_row_in_the_cli_table():
    table = section("CLI")
    rows = re.findall(r"^\| `kloset ([^`]*)`", table, flags=re.MULTILINE)
    missing = [path for path in command_paths(build_parser())
               if not any(row == path or row.startswith(path + " ") for row in rows)]  # fmt: skip
    assert not missing, f"README's CLI table has no row for: {', '.join('kloset ' + p for p in missing)}"


def test_the_cli_table_is_one_table():
    """A paragraph inside it would render the rows after it as loose text."""
    table = section("CLI")
    lines = table.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| command"))
    body = lines[first:]
    end = next((i for i, line in enumerate(body) if not line.startswith("|")), len(body))
    assert not any(line.startswith("| `kloset") for line in body[end:]), "a CLI row stands outside the table"


def test_command_paths_sees_subcommands_and_choices():
    paths = command_paths(build_parser())
    assert {"serve", "bench relevance", "bench model", "dlq purge", "train segmenter", "reindex"} <= set(paths)


def test_every_rpc_has_a_row_in_the_api_table():
    table = section("API")
    missing = []
    for module in (attribute_pb2, search_pb2, ingest_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            row = next((line for line in table.splitlines() if line.startswith(f"| `{service.name}`")), "")
            missing += [f"{service.name}.{m.name}" for m in service.methods if f"`{m.name}`" not in row]
    assert not missing, f"README's API table does not name: {', '.join(missing)}"


def test_readmes_figures_are_the_ones_in_the_benchmark_outputs():
    """README's figure blocks are written by `kloset docs` from docs/**.json; a typed or stale figure fails here."""
    _, changed = rendered(README, ROOT)
    assert not changed, f"README's figures differ from docs/ in {changed}: run `kloset docs`"
    assert "<!-- figures: models -->" in README


def test_a_changed_output_changes_the_figure_and_the_check_fails(tmp_path):
    (tmp_path / "docs/models").mkdir(parents=True)
    for name in ("attributes", "segmenter"):
        figures = json.loads((ROOT / f"docs/models/{name}.json").read_text())
        if name == "attributes":
            figures["category_accuracy"] = 0.987654
        (tmp_path / f"docs/models/{name}.json").write_text(json.dumps(figures))
    text, changed = rendered(README, tmp_path)
    assert changed == ["models"] and "category accuracy 0.988" in " ".join(text.split())
    out = subprocess.run([KLOSET, "docs", "--check"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr  # the committed README itself is current


def test_an_unknown_figures_block_is_refused():
    with pytest.raises(ValueError, match="'nonesuch'"):
        rendered("<!-- figures: nonesuch -->\nx\n<!-- /figures -->\n", ROOT)
