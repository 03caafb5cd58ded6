"""What a build did: one `NotebookRun` per notebook x source, and the `BuildResult` holding them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Statuses of one notebook x source in a build. NOT_MEASURED: not run, because the source
# lacks a column the notebook needs; its findings (measured: false) and page are written.
RAN, CACHED, FAILED, SKIPPED, NOT_APPLICABLE, MISSING, NOT_SELECTED, INTERRUPTED, NOT_MEASURED = (
    "ran",
    "cached",
    "failed",
    "skipped",
    "not applicable",
    "missing",
    "not selected",
    "interrupted",
    "not measured",
)
# The exit code of a build stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def error_outside_cells(ename: str, evalue: str, traceback: str = "") -> dict:
    """A run's error that no cell raised: the kernel died, the page export or the runner failed."""
    return {
        "cell": None,
        "execution_count": None,
        "ename": ename,
        "evalue": evalue,
        "traceback": traceback,
    }


def error_text(error: Mapping | None) -> str:
    """'ValueError: message' for a run's error; empty when there is none."""
    if not error:
        return ""
    return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".rstrip(": ")


@dataclass
class NotebookRun:
    """What happened to one notebook on one data source in this build."""

    notebook: str
    source: str
    title: str
    status: str
    reason: str = ""
    duration_s: float | None = None
    error: dict | None = None
    fingerprint: str | None = None
    page: str | None = None  # relative to reports/
    executed: str | None = None  # relative to reports/
    depends_on: tuple[str, ...] = ()
    parameters: dict = field(default_factory=dict)
    started_at: float | None = None  # epoch seconds, for runs executed in this build
    finished_at: float | None = None
    # its page and findings belong to this build: it ran successfully now, or it did not run
    # and its fingerprint matches a successful earlier run (only these findings reach the
    # verdicts)
    current: bool = False

    @property
    def key(self) -> str:
        return f"{self.source}/{self.notebook}"

    def describe_error(self) -> str:
        if not self.error:
            return ""
        e = self.error
        where = ""
        if e.get("cell") is not None:
            where = f" at cell {e['cell']}"
            if e.get("execution_count"):
                where += f" (In [{e['execution_count']}])"
        return f"{self.key} failed{where}: {error_text(e)}"


@dataclass
class BuildResult:
    """Outcome of `build`: one NotebookRun per notebook x source, and the claims step."""

    runs: list[NotebookRun]
    reports_dir: Path
    duration_s: float
    claims_evaluated: bool = False
    errors: list[str] = field(default_factory=list)  # build-level errors (claims step, sources)
    messages: list[str] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C

    @property
    def failed(self) -> list[NotebookRun]:
        return [r for r in self.runs if r.status == FAILED]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 1 if (self.failed or self.errors) else 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.runs)

    def summary(self) -> str:
        lines = [f"{'notebook':<44} {'status':<15} {'time':>8}"]
        for r in self.runs:
            if r.status in (NOT_APPLICABLE, NOT_SELECTED):
                continue
            t = f"{r.duration_s:6.1f} s" if r.status in (RAN, FAILED) and r.duration_s else ""
            starred = r.status in (SKIPPED, INTERRUPTED, NOT_MEASURED)
            status = f"{r.status}*" if starred else r.status
            lines.append(f"{r.key:<44} {status:<15} {t:>8}")
        executed = sum(r.duration_s or 0 for r in self.runs if r.status in (RAN, FAILED))
        lines.append(
            f"{self.count(RAN)} ran, {self.count(CACHED)} up to date, {self.count(FAILED)} failed, "
            f"{self.count(SKIPPED) + self.count(MISSING)} skipped, "
            f"{self.count(NOT_MEASURED)} not run (not measured); notebooks {executed:.1f} s, "
            f"build {self.duration_s:.1f} s wall"
        )
        if self.interrupted:
            lines.append(
                f"stopped by Ctrl-C: {self.count(INTERRUPTED)} notebook(s) not finished; "
                "run `painanx run` again to finish the build"
            )
        for r in self.runs:
            if r.status in (SKIPPED, INTERRUPTED, NOT_MEASURED) and r.reason:
                lines.append(f"  * {r.key}: {r.reason}")
        missing = sorted({r.notebook for r in self.runs if r.status == MISSING})
        if missing:
            lines.append(f"  * not written yet (listed in the plan): {', '.join(missing)}")
        for r in self.failed:
            lines.append(f"  FAILED {r.describe_error()}")
        lines.extend(f"  ERROR {e}" for e in self.errors)
        return "\n".join(lines)
