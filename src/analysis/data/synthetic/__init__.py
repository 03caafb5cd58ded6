"""The synthetic survey world: a population with known truth, sampled with a complex design.
It validates the pipeline; it is never evidence.
"""
