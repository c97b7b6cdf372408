"""What a run shows as it goes: a tqdm bar with the current losses, TensorBoard scalars, a JSONL file of every
logged step, and PNG charts of each term beside the checkpoints (rank 0 only; other ranks log nothing).

The JSONL file (`logs/metrics.jsonl`) is appended, so a resumed run continues it; the charts are drawn from it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from tqdm.auto import tqdm

from latentsync.atomic import atomic_path

log = logging.getLogger(__name__)


class TrainLogger:
    def __init__(
        self, folder: Path, enabled: bool, total_steps: int, first_step: int, desc: str, progress: bool = True
    ) -> None:
        self.folder, self.enabled = folder, enabled
        self.bar = tqdm(
            total=total_steps, initial=first_step, desc=desc, unit="step", disable=not (enabled and progress)
        )
        self.writer = None
        if enabled:
            (folder / "logs").mkdir(parents=True, exist_ok=True)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder / "logs"))
        self.metrics_path = folder / "logs" / "metrics.jsonl"

    def step(self, step: int, postfix: dict[str, float]) -> None:
        """Advance the bar to `step` with the losses of this step as its postfix."""
        if self.enabled:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def log(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled or self.writer is None:
            return
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps({"step": step, "split": prefix, **values}) + "\n")

    def charts(self, step: int) -> Path | None:
        """Draw `charts/losses.png`: one panel per logged term, train and validation lines (atomic)."""
        if not self.enabled or not self.metrics_path.is_file():
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        series: dict[str, dict[str, list[tuple[int, float]]]] = {}
        for line in self.metrics_path.read_text().splitlines():
            record = json.loads(line)
            split, at = record.pop("split"), record.pop("step")
            for key, value in record.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    series.setdefault(key, {}).setdefault(split, []).append((at, value))
        if not series:
            return None
        keys = sorted(series)
        cols = min(3, len(keys))
        rows = math.ceil(len(keys) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
        for ax, key in zip(axes.flat, keys):
            for split, points in sorted(series[key].items()):
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=split, marker="." if len(xs) < 50 else None)
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.legend()
        for ax in list(axes.flat)[len(keys) :]:
            ax.axis("off")
        fig.suptitle(f"step {step}")
        fig.tight_layout()
        path = self.folder / "charts" / "losses.png"
        with atomic_path(path) as temp:
            fig.savefig(temp, dpi=80)
        plt.close(fig)
        return path

    def message(self, text: str) -> None:
        if self.enabled:
            self.bar.write(text) if not self.bar.disable else log.info(text)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
