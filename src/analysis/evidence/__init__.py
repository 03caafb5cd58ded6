"""Published evidence: the curated study table (`studies`), the meta-analysis (`meta`), and
the value-blind mapping of published findings to the claims' estimands (`mapping`).
"""
