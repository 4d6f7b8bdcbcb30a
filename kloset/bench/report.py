"""The retrieval benchmark's figures for people: a markdown table and a recall / precision plot."""

import datetime
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt

_COLUMNS = ("recall_at_1", "recall_at_10", "map", "category_precision_at_10", "color_precision_at_10", "ms_per_query")


def _rows(figures: dict) -> list[tuple[str, dict]]:
    rows = [(f"polygon, {policy}", m) for policy, m in figures["region"].items()]
    rows += [(f"whole photo, {policy}", m) for policy, m in figures["photo"].items()]
    rows += [(f"polygon, {name} vector", m) for name, m in figures["by_vector"].items()]
    rows += [(f"original (HSV), {name.replace('_', ' ')}", m) for name, m in figures["baseline"].items()]
    return rows


def retrieval_table(figures: dict, data_name: str) -> str:
    """A markdown table of every configuration, headed with the date, machine and counts."""
    when = datetime.date.today().isoformat()
    lines = [
        f"Retrieval on `{data_name}`, {when}, {platform.machine()} ({platform.processor() or 'cpu'}): "
        f"{figures['n_catalog']} catalog garments, {figures['n_queries']} queries, top {figures['details']['top_k']}.",
        "",
        "| query, ranking | " + " | ".join(_COLUMNS) + " |",
        "| --- |" + " ---: |" * len(_COLUMNS),
    ]
    for name, m in _rows(figures):
        lines.append(f"| {name} | " + " | ".join(_cell(m.get(c)) for c in _COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return "–" if value is None else f"{value:g}"


def save_retrieval_plot(figures: dict, path: Path) -> Path:
    """Recall@1 against category precision@10 for each configuration; the baseline, without precision, as lines."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    markers = {"polygon": "o", "whole photo": "s"}
    for name, m in _rows(figures):
        if "category_precision_at_10" not in m:
            left.axhline(m["recall_at_1"], linestyle="--", color="gray", linewidth=1)
            left.annotate(name, (0.01, m["recall_at_1"]), xycoords=("axes fraction", "data"), fontsize=8,
                          va="bottom", color="gray")  # fmt: skip
            continue
        marker = markers["whole photo" if name.startswith("whole") else "polygon"]
        left.scatter(m["category_precision_at_10"], m["recall_at_1"], marker=marker, s=50)
        left.annotate(name, (m["category_precision_at_10"], m["recall_at_1"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")  # fmt: skip
    left.set_xlabel("category precision@10")
    left.set_ylabel("recall@1")
    left.set_xlim(0, 1.05)
    left.set_ylim(0, 1.05)
    left.grid(alpha=0.3)
    left.set_title("Finding the very garment vs keeping its category")
    names = [n for n, _ in _rows(figures)]
    speeds = [m["ms_per_query"] for _, m in _rows(figures)]
    right.barh(names, speeds, color=["tab:gray" if n.startswith("original") else "tab:blue" for n in names])
    right.set_xscale("log")
    right.set_xlabel("ms per query (median; search only for kloset, file reads included for the original)")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"kloset bench retrieval: {figures['n_catalog']} garments, {figures['n_queries']} queries")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
