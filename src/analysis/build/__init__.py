"""The report build: the plan of notebooks, fingerprints, notebook execution, the claims
step, the site (pages and index), and the display helpers notebooks call.
"""
