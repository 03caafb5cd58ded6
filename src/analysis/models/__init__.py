"""The analyses the notebooks run, one module per question, on the survey core: comorbidity
and anxiety-pain associations (on a shared design and findings base), mediation,
benzodiazepines, within-person change, E-values, the published-figure reproduction, the data
overview, and the figures of their results.
"""
