"""Presenting evaluation results: a terminal table, the JSON object, and a self-contained HTML page with plots.

Every command produces a summary dict of the same pattern (`{"videos"|"pairs": [...], "mean": {...}, ...}`);
these functions only format it. Files are written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

from latentsync.atomic import atomic_path


def atomic_write(path: str | Path, data: str) -> Path:
    with atomic_path(path) as temp:
        temp.write_text(data, encoding="utf-8")
    return Path(path)


def to_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, allow_nan=False, default=float)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Fixed-width text table of `columns` (missing values show as '-')."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def bar_plot(labels: Sequence[str], values: Sequence[float], title: str, ylabel: str) -> str:
    """A bar chart as a base64 PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(labels) + 2), 3.2))
    ax.bar(range(len(values)), values, color="#4477aa")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def html_page(
    title: str, notes: Sequence[str], tables: Sequence[tuple[Sequence[dict], Sequence[str]]], plots: Sequence[str]
) -> str:
    """One HTML page: notes, tables and base64 PNG plots, nothing fetched from elsewhere."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        (
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#eee}</style></head><body>"
        ),
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    for rows, columns in tables:
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>")
        parts.append("</table><br>")
    parts += [f"<img alt='plot' src='data:image/png;base64,{png}'><br>" for png in plots]
    parts.append("</body></html>")
    return "\n".join(parts)


def sync_report(summary: dict, detector: str) -> tuple[str, str]:
    """(terminal table, HTML page) of `eval sync`."""
    rows = []
    for video in summary["videos"]:
        name = Path(video["path"]).name
        rows.append(
            {
                "video": name,
                "tracks": len(video["tracks"]),
                **{k: video.get(k) for k in ("offset", "min_dist", "conf")},
                "error": video.get("error"),
            }
        )
    columns = ["video", "tracks", "offset", "min_dist", "conf", "error"]
    mean = summary["mean"] or {}
    footer = {"video": f"mean of {summary['scored']}", **mean}
    text = table([*rows, footer], columns)
    text += f"\n{summary['scored']} scored, {summary['failed']} failed; faces from {detector}"
    text += f"\nframes: {summary['frames']}"
    scored = [r for r in rows if r["conf"] is not None]
    plots = []
    if scored:
        labels = [r["video"] for r in scored]
        plots = [
            bar_plot(labels, [r["conf"] for r in scored], "Sync confidence (LSE-C)", "conf"),
            bar_plot(labels, [r["min_dist"] for r in scored], "Minimum distance (LSE-D)", "min_dist"),
        ]
    notes = [
        f"{summary['scored']} videos scored, {summary['failed']} failed. Face tracks from {detector}.",
        f"Frames: {summary['frames']}.",
        "LSE-C: higher is better; LSE-D: lower is better; offset in frames at 25 fps.",
    ]
    return text, html_page("LatentSync sync evaluation", notes, [([*rows, footer], columns)], plots)
