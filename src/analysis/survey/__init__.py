"""Design-based survey statistics, numerically equal to R's ``survey`` package.

One `SurveyDesign` is carried through an analysis; its estimator methods (``mean``,
``proportion``, ``total``, ``ratio``, ``prevalence_ratio``; from `analysis.survey.estimates`)
and the models (`svyglm`, `svyolr`) return result objects with ``summary()`` and ``to_frame()``.
`direct_standardize` gives age-adjusted (directly standardised) means and proportions.
"""

from analysis.survey.design import LONELY_PSU_POLICIES, SurveyDesign
from analysis.survey.errors import EmptyDomainError, LonelyPSUError, SurveyDesignError
from analysis.survey.estimates import DomainEstimates, Estimate, PrevalenceRatio
from analysis.survey.ordinal import SurveyOrdinalResult, svyolr
from analysis.survey.regression import (
    ContrastResult,
    SurveyGLMResult,
    SurveyModelError,
    WaldTestResult,
    svyglm,
)
from analysis.survey.standardize import direct_standardize

__all__ = [
    "LONELY_PSU_POLICIES",
    "ContrastResult",
    "DomainEstimates",
    "EmptyDomainError",
    "Estimate",
    "LonelyPSUError",
    "PrevalenceRatio",
    "SurveyDesign",
    "SurveyDesignError",
    "SurveyGLMResult",
    "SurveyModelError",
    "SurveyOrdinalResult",
    "WaldTestResult",
    "direct_standardize",
    "svyglm",
    "svyolr",
]
