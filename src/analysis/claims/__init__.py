"""The article's claims: the registry (pure data access to ``resources/claims.yaml``) and the
verdict engine that applies each claim's fixed rule to the findings of a build.
"""
