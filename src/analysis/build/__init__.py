"""The report build: the plan of notebooks, fingerprints, notebook execution, the site,
and the display helpers notebooks call.
"""
