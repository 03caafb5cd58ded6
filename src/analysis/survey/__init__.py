"""Design-based survey statistics, numerically equal to R's ``survey`` package.

One `SurveyDesign` is carried through an analysis; its estimator methods (``mean``,
``proportion``, ``total``, ``ratio``, ``prevalence_ratio``; from `analysis.survey.estimates`)
return result objects with ``summary()`` and ``to_frame()``.
"""

from analysis.survey.design import LONELY_PSU_POLICIES, SurveyDesign
from analysis.survey.errors import EmptyDomainError, LonelyPSUError, SurveyDesignError
from analysis.survey.estimates import DomainEstimates, Estimate, PrevalenceRatio

__all__ = [
    "LONELY_PSU_POLICIES",
    "DomainEstimates",
    "EmptyDomainError",
    "Estimate",
    "LonelyPSUError",
    "PrevalenceRatio",
    "SurveyDesign",
    "SurveyDesignError",
]
