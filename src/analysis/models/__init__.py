"""The analyses the notebooks run, one module per question, on the survey core: comorbidity
and anxiety-pain associations, mediation, benzodiazepines, within-person change, E-values,
the published-figure reproduction and the data overview.
"""
