"""The simulation study: the notebooks' estimators and the claims' rules over many synthetic
samples (bias, coverage, false-positive rates), run on Dask.
"""
