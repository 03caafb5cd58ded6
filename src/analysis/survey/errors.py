"""Errors of the survey core. Each message names the column and the offending count."""

from __future__ import annotations


class SurveyDesignError(ValueError):
    """The design or analysis variables are unusable; the message names the column and count."""


class LonelyPSUError(SurveyDesignError):
    """A stratum has a single PSU and the lonely-PSU policy is 'fail' (R's default)."""


class EmptyDomainError(SurveyDesignError):
    """A domain (subgroup) has no observations with a usable value of the analysed variable."""
