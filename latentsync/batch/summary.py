"""The end of a batch: what was done, what was skipped as done before, what failed and why, and how fast."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .records import JobRecord


@dataclass
class BatchSummary:
    records: list[JobRecord]  # the jobs this run ran or refused, in the order they finished
    skipped: list[str] = field(default_factory=list)  # outputs already done by an earlier run
    wall_seconds: float = 0.0

    @property
    def done(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "done"]

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status != "done"]

    @property
    def seconds_per_output_second(self) -> float | None:
        """Worker seconds per second of video written (None when nothing was written)."""
        output = sum(r.output_seconds for r in self.done)
        return sum(r.seconds for r in self.done) / output if output else None

    def as_dict(self) -> dict:
        return {
            "done": len(self.done),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "wall_seconds": round(self.wall_seconds, 3),
            "seconds_per_output_second": self.seconds_per_output_second,
            "failures": [{"output": r.key, "reason": r.reason} for r in self.failed],
            "jobs": [asdict(r) for r in self.records],
            "skipped_outputs": self.skipped,
        }

    def table(self) -> str:
        lines = [f"{'status':<8}{'seconds':>9}{'video s':>9}{'s per s':>9}  {'worker':<12}output"]
        for r in self.records:
            if r.status == "done":
                per = f"{r.seconds / r.output_seconds:>9.2f}" if r.output_seconds else f"{'-':>9}"
                lines.append(f"{'done':<8}{r.seconds:>9.1f}{r.output_seconds:>9.2f}{per}  {r.worker:<12}{r.key}")
            else:
                lines.append(
                    f"{'failed':<8}{r.seconds:>9.1f}{'-':>9}{'-':>9}  {r.worker or '-':<12}{r.key}: {r.reason}"
                )
        rate = self.seconds_per_output_second
        lines.append(
            f"{len(self.done)} done, {len(self.skipped)} skipped (done before), {len(self.failed)} failed "
            f"in {self.wall_seconds:.1f} s"
            + (f"; {rate:.2f} s of work per second of output" if rate is not None else "")
        )
        return "\n".join(lines)
