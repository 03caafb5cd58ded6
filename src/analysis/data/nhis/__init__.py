"""The US National Health Interview Survey (NHIS) adult files: per-year codebook kept as
data (`codebook`), checksummed download (`fetch`), recoding to the tidy schema (`recode`),
and small files in each year's exact layout for tests (`fixtures`; synthetic, never evidence).
"""
