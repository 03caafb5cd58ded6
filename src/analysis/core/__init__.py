"""Foundations every layer may use: project paths, atomic file writes and hashes,
provenance, and the findings contract (what a notebook reports and the claims step reads).
"""
