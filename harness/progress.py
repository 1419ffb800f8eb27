"""What a study shows while it runs: a tqdm bar over the runs on a terminal, plain lines otherwise (logs,
CI). The executor says when a run starts and how far it got; the study, when it has landed."""
from __future__ import annotations

import sys

from reports.folder.schema import OTHERS_SHARE

from .noise import busy_note
from .plan import RunSpec


class Progress:
    """The progress of ``total`` runs: ``start`` and ``epoch`` (said by the executor), ``finish`` (by the study)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.stream, self.bar = stream, None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", file=stream, dynamic_ncols=True)
        self.total, self.done = total, 0

    def start(self, spec: RunSpec) -> None:
        if self.bar is not None:
            self.bar.set_description(spec.label)
        else:
            print(f"[{self.done + 1}/{self.total}] {spec.label} ...", file=self.stream, flush=True)

    def epoch(self, spec: RunSpec, epoch: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"epoch {epoch}/{spec.epochs}")

    def finish(self, spec: RunSpec, row: dict) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        status = row["status"]
        if status != "ok":
            detail = row["error"]
        elif spec.instrumented:  # its accuracy after a few epochs without evaluation means nothing
            detail = f"{row['wall_s']:.2f} s, timing of the phases only, no accuracy"
        else:
            detail = f"{row['wall_s']:.2f} s, test acc {row.get('test_acc', float('nan')):.4f}"
        line = f"    {spec.label}: {status} ({detail}){busy_note(row.get(OTHERS_SHARE))}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
