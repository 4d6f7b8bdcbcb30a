"""The relevance benchmark's figures for people: a markdown table and a precision plot per policy."""

import datetime
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt

_COLUMNS = (
    "category_precision_at_10", "color_precision_at_10", "both_precision_at_10", "ndcg_at_10", "any_both_at_10",
    "short_lists", "ms_per_query",
)  # fmt: skip
_PRECISIONS = ("category_precision_at_10", "color_precision_at_10", "both_precision_at_10")
_MODE_NAMES = {"photo": "whole photo", "region": "polygon"}


def _rows(figures: dict, mode: str) -> list[tuple[str, dict]]:
    rows = [(f"{_MODE_NAMES[mode]}, {policy}", m) for policy, m in figures[mode].items()]
    classifier = figures["classifier"][mode]
    rows.append((f"{_MODE_NAMES[mode]}, the classifier's own prediction", {
        "category_precision_at_10": classifier["category"], "color_precision_at_10": classifier["color"],
        "both_precision_at_10": classifier.get("both"),
    }))  # fmt: skip
    rows.append((f"{_MODE_NAMES[mode]}, original (HSV in the predicted folder)", figures["baseline"][mode]))
    return rows


def relevance_table(figures: dict) -> str:
    """A markdown table of every mode and policy, headed with the date, machine and counts."""
    when = datetime.date.today().isoformat()
    details = figures["details"]
    lines = [
        f"Relevance, {when}, {platform.machine()}: queries are {details['queries']} ({details['query_photos']} photos, "
        f"{figures['n_queries']} garments), none in the catalog ({figures['n_catalog']} garments) or in training; "
        f"top {details['top_k']}. Garments without a list (counted 0): {details['garments_without_a_list']}.",
        "",
        "| query, ranking | " + " | ".join(_COLUMNS) + " |",
        "| --- |" + " ---: |" * len(_COLUMNS),
    ]
    for mode in ("photo", "region"):
        for name, m in _rows(figures, mode):
            lines.append(f"| {name} | " + " | ".join(_cell(m.get(c)) for c in _COLUMNS) + " |")
    near = figures.get("near_duplicate", {})
    if near:
        lines += ["", "Near-duplicates (a new view of a catalog photo, default policy): " + "; ".join(
            f"{_MODE_NAMES[mode]} recall@1 {m['recall_at_1']:g}, recall@10 {m['recall_at_10']:g} (n = {m['n']})"
            for mode, m in near.items()
        ) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return "–" if value is None else f"{value:g}"


def _tick(name: str) -> str:
    if name.startswith("the classifier"):
        return "classifier's accuracy\n(a label filter's ceiling)"
    if name.startswith("original"):
        return "original\n(HSV scan in the\npredicted folder)"
    return f"{name} (default)" if name == "soft" else name


def save_relevance_plot(figures: dict, path: Path) -> Path:
    """Category, color and both-right precision@10 per policy, the classifier and the original, per mode."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), sharey=True)
    colors = ("tab:blue", "tab:orange", "tab:green")
    for axis, mode in zip(axes, ("photo", "region"), strict=True):
        rows = _rows(figures, mode)
        names = [_tick(name.split(", ", 1)[1]) for name, _ in rows]
        width = 0.27
        for i, (key, color) in enumerate(zip(_PRECISIONS, colors, strict=True)):
            values = [m.get(key) or 0.0 for _, m in rows]
            bars = axis.bar([x + (i - 1) * width for x in range(len(rows))], values, width, color=color,
                            label=key.replace("_at_10", "@10").replace("_", " "))  # fmt: skip
            axis.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
        axis.set_xticks(range(len(rows)), names, fontsize=8)
        axis.set_ylim(0, 1)
        axis.grid(axis="y", alpha=0.3)
        axis.set_title(f"{_MODE_NAMES[mode]} query")
    axes[0].set_ylabel("share of the 10 results with the query garment's labelled label")
    axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"kloset bench relevance: {figures['n_queries']} unseen query garments, "
                 f"{figures['n_catalog']} catalog garments")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
