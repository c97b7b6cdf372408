"""What both training datasets share: indexing by epoch and sample, and replacing unusable clips in place.

A clip that cannot give a sample (undecodable, too short, no audio) is replaced inside `__getitem__` by another
clip drawn from the sample's own random stream, so every rank always yields a full batch and the ranks never fall
out of step (the official trainer skips the batch on the failing rank only). Replacements are bounded and counted.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any

from torch.utils.data import Dataset

from latentsync.data.clips import MAX_REPLACEMENTS, ClipError, ClipReader, sample_rng
from latentsync.data.sources import Clip, DataError

log = logging.getLogger(__name__)


class ClipDataset(Dataset):
    """Sample `i` of epoch `e` comes from clip `i` (the sampler shuffles), windows drawn from (seed, e, i)."""

    def __init__(self, clips: list[Clip], reader: ClipReader, seed: int) -> None:
        self.clips, self.reader, self.seed = clips, reader, seed
        self.epoch = 0
        self._bad: dict[int, str] = {}  # clips known unusable in this process, by index

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = sample_rng(self.seed, self.epoch, index)
        choice, reasons = index, list[str]()
        for _ in range(MAX_REPLACEMENTS):
            if choice not in self._bad:
                try:
                    item = self.sample(self.clips[choice], rng)
                    item["replaced"] = len(reasons)
                    return item
                except ClipError as exc:
                    self._bad[choice] = exc.reason
                    self.reader.replaced[exc.reason] += 1
                    log.warning("skipping clip %s", exc)
            reasons.append(self._bad[choice])
            if len(self._bad) == len(self.clips):
                break
            choice = rng.randrange(len(self.clips))
        counts = ", ".join(f"{reasons.count(r)} {r}" for r in sorted(set(reasons)))
        raise DataError(f"no usable clip found after {len(reasons)} tries ({counts}); check the training data")

    def sample(self, clip: Clip, rng: random.Random) -> dict[str, Any]:
        raise NotImplementedError

    def check_usable(self) -> None:
        """Raise a DataError before training when no clip at all can give a sample (stops at the first good one)."""
        reasons: Counter[str] = Counter()
        for clip in self.clips:
            try:
                self.reader.open(clip).close()
                return
            except ClipError as exc:
                reasons[exc.reason] += 1
        raise DataError(f"none of the {len(self.clips)} clips is usable: {dict(reasons)}")
