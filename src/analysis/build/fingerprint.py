"""Incremental builds: a fingerprint per notebook x source, kept in ``reports/manifest.json``.

A notebook re-runs only when its fingerprint changed: the sha256 of its source cells, its
parameters, the library code (``src/analysis/**/*.py`` and resources), the installed package
versions, its input files and its dependencies' fingerprints. Content hashes, not timestamps:
a touched but unchanged file re-runs nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from analysis.build.results import NOT_MEASURED, RAN, NotebookRun
from analysis.core import provenance
from analysis.core.io import sha256_file, write_text_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def findings_path(source: str, notebook: str) -> str:
    """Where a notebook's findings are, relative to reports/ (the name `write_findings` requires)."""
    return f"{source}/findings/{notebook}.json"


def project_relative(path: Path, root: Path) -> str:
    """``path`` relative to the project root, as shown on the pages; absolute when outside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


class Manifest:
    """reports/manifest.json: every notebook x source's last outcome and fingerprint, and the
    sha256 of input files (reused while a file's size and mtime are unchanged)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = self._read(path)

    @staticmethod
    def _read(path: Path) -> dict:
        empty = {"version": MANIFEST_VERSION, "tasks": {}, "file_hashes": {}}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return empty
        if data.get("version") != MANIFEST_VERSION:
            return empty
        data.setdefault("tasks", {})
        data.setdefault("file_hashes", {})
        return data

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")

    def entry(self, key: str) -> dict:
        """The last recorded outcome of ``key`` ("source/notebook"); empty when never built."""
        return self.data["tasks"].get(key, {})

    def is_current(self, key: str, fingerprint: str | None, reports_dir: Path) -> bool:
        """Built before with this fingerprint, successfully, and its page, notebook (unless it
        was not run: not measured) and findings (when it wrote some) still exist."""
        previous = self.entry(key)
        files = [previous.get("page") or "-"]
        if not previous.get("not_measured"):
            files.append(previous.get("executed") or "-")
        if previous.get("findings"):
            files.append(previous["findings"])
        return (
            fingerprint is not None
            and previous.get("fingerprint") == fingerprint
            and previous.get("status") == "ok"
            and all((reports_dir / f).is_file() for f in files)
        )

    def record(self, run: NotebookRun, built_at: str | None, reports_dir: Path) -> None:
        """Keep a run's outcome; a failure keeps no fingerprint, so it always runs again. A run
        not made because the source lacks a measure keeps its notice (``not_measured``)."""
        findings = findings_path(run.source, run.notebook)
        succeeded = run.status in (RAN, NOT_MEASURED)
        self.data["tasks"][run.key] = {
            "status": "ok" if succeeded else "failed",
            "fingerprint": run.fingerprint if succeeded else None,
            "title": run.title,
            "page": run.page,
            "executed": run.executed,
            "findings": findings if (reports_dir / findings).is_file() else None,
            "duration_s": run.duration_s,
            "built_at": built_at,
            "error": run.error,
        }
        if run.status == NOT_MEASURED:
            self.data["tasks"][run.key]["not_measured"] = run.reason

    def forget(self, key: str) -> None:
        """Drop a run's record: a run about to start, or whose outputs are no longer this
        site's (its dependency failed). Until it is recorded again its findings are not used."""
        self.data["tasks"].pop(key, None)

    def vouches_for(self, key: str) -> bool:
        """The last recorded run of ``key`` succeeded."""
        return self.entry(key).get("status") == "ok"

    def record_build(self, library_sha256: str) -> str:
        """Note the end of a build; returns its time stamp."""
        built_at = provenance.now_utc()
        self.data["last_build"] = {"built_at": built_at, "library_sha256": library_sha256}
        return built_at

    def file_sha256(self, path: Path) -> str:
        cache = self.data["file_hashes"]
        st = path.stat()
        key = str(path.resolve())
        hit = cache.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = sha256_file(path)
        cache[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest


def input_records(files: Iterable[Path], root: Path, manifest: Manifest) -> list[dict]:
    """Path, sha256 and size of each input file: for the fingerprint and the page's provenance."""
    return [
        {
            "path": project_relative(p, root),
            "sha256": manifest.file_sha256(p),
            "bytes": p.stat().st_size,
        }
        for p in files
    ]


def notebook_fingerprint(
    *,
    notebook_sha256: str,
    parameters: dict,
    library_sha256: str,
    packages: dict,
    inputs: list[dict],
    dependencies: Iterable[str | None],
    kernel_name: str,
) -> str:
    """One sha256 over everything that shapes a notebook's page on one source."""
    return provenance.sha256_json(
        {
            "v": MANIFEST_VERSION,
            "notebook": notebook_sha256,
            "parameters": parameters,
            "library": library_sha256,
            "packages": packages,
            "inputs": [(i["path"], i["sha256"]) for i in inputs],
            "deps": list(dependencies),
            "kernel": kernel_name,
        }
    )


def manifest_entries(reports_dir: str | os.PathLike[str]) -> dict[str, dict]:
    """The manifest's per-notebook entries (for tools and tests)."""
    return Manifest(Path(reports_dir) / MANIFEST_NAME).data["tasks"]
