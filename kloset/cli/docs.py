"""`kloset docs`: README's figures written from the benchmark outputs committed under docs/, never typed.

A block of README between `<!-- figures: NAME -->` and `<!-- /figures -->` is rendered by BLOCKS[NAME] from
JSON files the commands wrote (e.g. `kloset evaluate attributes --json > docs/models/attributes.json`);
`kloset docs` rewrites the blocks, `kloset docs --check` (and a test) fails while any differs from its source.
"""

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from kloset.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"(<!-- figures: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S)


def models_block(root: Path) -> str:
    """The shipped models' validation figures, from `kloset evaluate ... --split validation --json`."""
    attributes = json.loads((root / "docs/models/attributes.json").read_text())
    segmenter = json.loads((root / "docs/models/segmenter.json").read_text())
    return _wrapped(
        f"Validation figures (`kloset evaluate attributes|segmenter --data ../shared/data/ccp --split validation "
        f"--json > docs/models/attributes.json|segmenter.json`, photos held out by id): attribute model "
        f"`{attributes['model_version']}`, {attributes['n']} garments cut out by polygon: color accuracy "
        f"{attributes['color_accuracy']:.3f}, category accuracy {attributes['category_accuracy']:.3f} (tops "
        f"{attributes['category_accuracy_top']:.3f}, bottoms {attributes['category_accuracy_bottom']:.3f}); "
        f"segmenter `{segmenter['model_version']}`, {segmenter['n']} photos: mean IoU of top and bottom "
        f"{segmenter['miou']:.3f} (top {segmenter['iou_top']:.3f}, bottom {segmenter['iou_bottom']:.3f})."
    )


def _wrapped(paragraph: str) -> str:
    """One paragraph at README's width (a code span is never split: textwrap breaks only at spaces)."""
    return textwrap.fill(paragraph, width=116, break_long_words=False, break_on_hyphens=False) + "\n"


BLOCKS: dict[str, Callable[[Path], str]] = {"models": models_block}


def rendered(text: str, root: Path) -> tuple[str, list[str]]:
    """text with every figures block rendered anew, and the names of those that changed."""
    changed: list[str] = []

    def render(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise ValueError(f"README has a figures block '{name}' that kloset docs does not know")
        body = BLOCKS[name](root)
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return _BLOCK.sub(render, text), changed


def register(commands: argparse._SubParsersAction) -> None:
    docs = commands.add_parser("docs", help="write README's figures from the benchmark outputs under docs/")
    docs.add_argument("--check", action="store_true", help="change nothing; exit 1 if a figure is out of date")
    docs.set_defaults(run=run_docs)


def run_docs(args, settings: Settings) -> int:
    readme = ROOT / "README.md"
    text, changed = rendered(readme.read_text(), ROOT)
    if args.check:
        if changed:
            print(f"kloset docs: README's figures differ from docs/ in: {', '.join(changed)} (run kloset docs)",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    if changed:
        readme.write_text(text)
    print(f"README: {', '.join(changed) or 'no figures'} rewritten")
    return 0
