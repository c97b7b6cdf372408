"""The jobs file: one lip-sync job per CSV row or JSON line, with the command line's settings as defaults.

A file-wide mistake (unknown format or column, two rows writing the same output) stops the batch before any model
loads. A row that cannot run (a setting of the wrong type or out of range, an input that is missing, unreadable or
lacks its stream) is a job with a `problem`; `refuse_bad_rows` lists every such row at once, before any model loads,
with the same input checks and words as `infer`. What only running shows (a URL that fails, no face) fails its job.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from latentsync.cli.checks import LIMITS, OUTPUT_SUFFIXES, check_audio, check_settings, check_video
from latentsync.cli.options import point
from latentsync.errors import LatentSyncError
from latentsync.media.sync import SYNC_MODES

PATH_COLUMNS = ("video", "audio", "output")
# Settings a row may give, with the type a CSV cell is read as.
ROW_OPTIONS: dict[str, Any] = {
    "sync_mode": str,
    "seed": int,
    "steps": int,
    "guidance_scale": float,
    "face_index": int,
    "face_at": point,
}
COLUMNS = PATH_COLUMNS + tuple(ROW_OPTIONS)


class JobsFileError(LatentSyncError, ValueError):
    """A jobs file that cannot be read as a whole (format, columns, clashing outputs)."""


@dataclass(frozen=True)
class Job:
    """One row: where its inputs are, where its output goes, and the pipeline settings it runs with."""

    line: int  # line of the jobs file, for messages
    video: str  # an absolute local path or an http(s) URL
    audio: str
    output: Path | None  # None only when the row is too broken to name one
    options: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # why the row cannot run; it is recorded as failed without running

    @property
    def key(self) -> str:
        """How the records know this job: its output path."""
        return str(self.output) if self.output is not None else f"line {self.line}"

    @property
    def fingerprint(self) -> str:
        """Changes when anything that shapes the output changes, so an edited row runs again."""
        text = json.dumps([self.video, self.audio, self.options], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_url(text: str) -> bool:
    return "://" in text


def read_jobs(path: str | Path, output_dir: str | Path, defaults: dict[str, Any]) -> list[Job]:
    """The jobs of a .csv or .jsonl file; relative inputs are read from the file's folder, relative outputs go to
    `output_dir`, and a row's settings override `defaults` (the pipeline's keyword arguments)."""
    path = Path(path)
    if not path.is_file():
        raise JobsFileError(f"{path}: no such jobs file")
    text_cells = path.suffix.lower() == ".csv"
    if text_cells:
        rows = _csv_rows(path)
    elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = _jsonl_rows(path)
    else:
        raise JobsFileError(
            f"{path}: write the jobs as .csv (a header row, then one job a row) or .jsonl (one JSON object a line)"
        )
    jobs = [_job(line, row, path.parent, Path(output_dir), defaults, text_cells) for line, row in rows]
    _refuse_clashing_outputs(path, jobs)
    return jobs


def _csv_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        lines = [(n, row) for n, row in enumerate(csv.reader(f), 1) if any(cell.strip() for cell in row)]
    if not lines:
        return []
    first = [cell.strip().lower() for cell in lines[0][1]]
    if "video" in first:
        header, lines = first, lines[1:]
        _check_columns(path, header)
    else:  # no header: the columns in their documented order
        header = list(COLUMNS)
    rows = []
    for n, cells in lines:
        if len(cells) > len(header):
            rows.append((n, {"_problem": f"{len(cells)} cells but only {len(header)} columns"}))
            continue
        rows.append((n, {name: cell.strip() for name, cell in zip(header, cells) if cell.strip()}))
    return rows


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            rows.append((n, {"_problem": f"not valid JSON ({exc.msg})"}))
            continue
        if not isinstance(row, dict):
            rows.append((n, {"_problem": "not a JSON object"}))
            continue
        _check_columns(path, list(row), line=n)
        rows.append((n, {k: v for k, v in row.items() if v is not None}))
    return rows


def _check_columns(path: Path, names: list[str], line: int | None = None) -> None:
    unknown = [name for name in names if name not in COLUMNS]
    where = f"{path}" + (f" line {line}" if line else "")
    if unknown:
        raise JobsFileError(f"{where}: unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}")


def _job(
    line: int, row: dict[str, Any], base: Path, output_dir: Path, defaults: dict[str, Any], text_cells: bool
) -> Job:
    video, audio = str(row.get("video", "")), str(row.get("audio", ""))
    output = _output(row, video, audio, output_dir)
    options = dict(defaults)
    problem = row.get("_problem") or check_row(row)
    if problem is None:
        try:
            given = {name: _value(name, row[name], text_cells) for name in ROW_OPTIONS if name in row}
            check_settings({name: value for name, value in given.items() if name in LIMITS}, label=str)
            options.update(given)
        except (ValueError, LatentSyncError) as exc:
            problem = str(exc)
    if "face_index" in row and "face_at" in row:
        problem = problem or "give face_index or face_at, not both"
    elif "face_index" in row or "face_at" in row:  # a row's choice of face replaces the command line's
        options["face_at" if "face_index" in row else "face_index"] = None
    return Job(line, _input(video, base), _input(audio, base), output, options, problem)


def _input(text: str, base: Path) -> str:
    return text if not text or is_url(text) else str((base / Path(text).expanduser()).resolve())


def _output(row: dict[str, Any], video: str, audio: str, output_dir: Path) -> Path | None:
    if "output" in row:
        return (output_dir / Path(str(row["output"])).expanduser()).resolve()
    if not video or not audio:
        return None

    def stem(text: str) -> str:
        return Path(text.split("?")[0].rstrip("/")).stem or "input"

    return (output_dir / f"{stem(video)}-{stem(audio)}.mp4").resolve()


def _value(name: str, value: Any, text_cells: bool) -> Any:
    """A row's setting with its type: CSV cells are converted, JSON values must already have it."""
    kind = ROW_OPTIONS[name]
    if text_cells and kind is not str:
        try:
            return kind(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise ValueError(f"{name}: {value!r} is not {_kind_name(name)}") from exc
    if name == "face_at":
        if isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
            return (float(value[0]), float(value[1]))
    elif kind is float and _is_number(value):
        return float(value)
    elif isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise ValueError(f"{name}: {value!r} is not {_kind_name(name)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind_name(name: str) -> str:
    return {str: "text", int: "a whole number", float: "a number", point: "X,Y"}[ROW_OPTIONS[name]]


def check_row(row: dict[str, Any]) -> str | None:
    """Why a row cannot run, from its text alone (None when it looks runnable); `probe_inputs` opens the files."""
    for column in ("video", "audio"):
        text = str(row.get(column, ""))
        if not text:
            return f"no {column} given"
        if is_url(text):
            from latentsync.server.fetch import FetchError, check_scheme

            try:
                check_scheme(text)
            except FetchError as exc:
                return f"{column}: {exc}"
    output = str(row.get("output", "default.mp4"))
    if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
        return f"output {output}: write an H.264 video file, one of {', '.join(OUTPUT_SUFFIXES)}"
    mode = row.get("sync_mode")
    if mode is not None and mode not in SYNC_MODES:
        return f"sync_mode {mode!r}: choose one of {', '.join(SYNC_MODES)}"
    return None


def probe_inputs(jobs: Sequence[Job]) -> list[Job]:
    """`jobs`, each local input opened as `infer` opens it (exists, is media, has the stream it is used for); a
    failing one becomes the job's `problem`. URLs are checked when their job fetches them. A file that several
    rows use is opened once."""
    checks = {"video": check_video, "audio": check_audio}
    found: dict[tuple[str, str], str | None] = {}

    def problem(column: str, where: str) -> str | None:
        if (column, where) not in found:
            try:
                checks[column](where, label=column)
                found[column, where] = None
            except LatentSyncError as exc:
                found[column, where] = str(exc)
        return found[column, where]

    probed = []
    for job in jobs:
        if job.problem is None:
            inputs = (("video", job.video), ("audio", job.audio))
            why = next((p for column, where in inputs if not is_url(where) and (p := problem(column, where))), None)
            job = replace(job, problem=why)
        probed.append(job)
    return probed


def refuse_bad_rows(path: str | Path, jobs: Sequence[Job]) -> None:
    """Stop the batch, listing every row with a `problem` and its line, so that one edit of the file fixes all."""
    bad = [job for job in jobs if job.problem is not None]
    if bad:
        rows = "\n".join(f"  line {job.line}: {job.problem}" for job in bad)
        raise JobsFileError(
            f"{path}: {len(bad)} row(s) cannot run; nothing was run. Fix them (or remove them) and run again:\n{rows}"
        )


def _refuse_clashing_outputs(path: Path, jobs: list[Job]) -> None:
    seen: dict[Path, int] = {}
    for job in jobs:
        if job.output is None:
            continue
        if job.output in seen:
            raise JobsFileError(
                f"{path}: lines {seen[job.output]} and {job.line} would both write {job.output}; "
                "give one of them an output column"
            )
        seen[job.output] = job.line
