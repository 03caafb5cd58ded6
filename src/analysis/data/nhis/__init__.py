"""The US National Health Interview Survey (NHIS) adult files (2017, 2019-2024): per-year
codebook kept as data (`codebook`; its file and years, read with yaml alone, in
`codebook_spec`), checksummed download (`fetch`), recoding to the tidy
schema (`recode`), finding, preparing, pooling and loading the tidy files, including the 2017
extract committed with the code (`prepare`), and small files in each year's exact layout for
tests (`fixtures`; synthetic, never evidence).
"""
