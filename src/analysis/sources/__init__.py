"""Data sources for the notebooks.

`load(data_source, ...)` returns the tidy respondent frame of a source (loaders are declared
in ``resources/sources.yaml``); `prepare_output_dir` resolves a notebook's ``output_dir``.
The registry itself lives in `analysis.source_registry`.
"""

from analysis.source_registry import (
    SourceSpec,
    SourceUnavailableError,
    load,
    prepare_output_dir,
    resolve_inputs,
    source_specs,
)

__all__ = [
    "SourceSpec",
    "SourceUnavailableError",
    "load",
    "prepare_output_dir",
    "resolve_inputs",
    "source_specs",
]
