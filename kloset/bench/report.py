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
    """Recall@1 against category precision@10 for each configuration (the baseline, without precision, as
    lines), and the median time per query of each."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    colors = plt.get_cmap("tab10").colors
    for i, (name, m) in enumerate(_rows(figures)):
        if "category_precision_at_10" not in m:
            left.axhline(m["recall_at_1"], linestyle="--", color="gray", linewidth=1)
            left.annotate(f"{name}: recall@1 {m['recall_at_1']:.2f}", (0.02, m["recall_at_1"]),
                          xycoords=("axes fraction", "data"), fontsize=8, va="bottom", color="dimgray")  # fmt: skip
            continue
        marker = "s" if name.startswith("whole") else ("^" if "vector" in name else "o")
        left.scatter(m["category_precision_at_10"], m["recall_at_1"], marker=marker, s=60, color=colors[i % 10],
                     label=name)  # fmt: skip
    left.set_xlabel("category precision@10 (share of the 10 results of the query's labelled category)")
    left.set_ylabel("recall@1 (the very garment ranked first)")
    left.set_xlim(0.3, 1.0)
    left.set_ylim(0.0, 1.02)
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    left.set_title("Finding the very garment vs keeping its category")
    names = [n for n, _ in _rows(figures)]
    speeds = [m["ms_per_query"] for _, m in _rows(figures)]
    bars = right.barh(names, speeds, color=["tab:gray" if n.startswith("original") else "tab:blue" for n in names])
    right.bar_label(bars, labels=[f"{v:.1f} ms" for v in speeds], fontsize=8, padding=2)
    right.set_xscale("log")
    right.set_xlabel("median ms per query (kloset: search only; original: reading its folder's files)")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"kloset bench retrieval: {figures['n_catalog']} garments, {figures['n_queries']} queries")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
