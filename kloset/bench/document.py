"""docs/benchmarks.md: one section per benchmark, each rewritten in place by its own run.

Every `kloset bench X` replaces only the text between its markers, so running one benchmark leaves the others'
figures as they were measured.
"""

import datetime
import os
import platform
import re
from pathlib import Path

from kloset.core.config import REPO_ROOT

DOCS_DIR = REPO_ROOT / "docs"
BENCHMARKS_DOC = DOCS_DIR / "benchmarks.md"
PLOTS_DIR = DOCS_DIR / "benchmarks"  # the PNGs, linked from benchmarks.md as benchmarks/NAME.png
_HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by its command (`kloset bench <name>`); rerun one to refresh it. Figures are medians "
    "(and p99) measured in one run on the machine named in the section: compare ratios, not absolute times.\n"
)


def machine() -> str:
    """The machine a figure was measured on, in words."""
    cpus = os.cpu_count() or 0
    memory = ""
    try:
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:  # psutil is a dependency; the benchmark still runs without it
        pass
    return f"{platform.machine()}, {cpus} CPUs{memory}, Python {platform.python_version()}"


def stamp() -> str:
    """'2026-12-02, x86_64, 2 CPUs, 24 GiB, Python 3.11.7': what heads every section."""
    return f"{datetime.date.today().isoformat()}, {machine()}"


def update_section(name: str, markdown: str, path: Path = BENCHMARKS_DOC) -> Path:
    """Put markdown between `<!-- bench:name -->` markers in path, appending the section if it is new."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table; numbers printed compactly."""

    def cell(value: object) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot, drawing to files only; imported late so a benchmark's measuring never loads it."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay out, write (creating the folder) and release a benchmark's figure."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
