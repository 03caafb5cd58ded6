"""Design-based survey statistics, numerically equal to R's ``survey`` package.

One `SurveyDesign` is carried through an analysis; estimators take it and return result
objects with ``summary()`` and ``to_frame()``.
"""

from analysis.survey.design import (
    LONELY_PSU_POLICIES,
    LonelyPSUError,
    SurveyDesign,
    SurveyDesignError,
)
from analysis.survey.ordinal import SurveyOrdinalResult, svyolr
from analysis.survey.regression import (
    ContrastResult,
    SurveyGLMResult,
    SurveyModelError,
    WaldTestResult,
    svyglm,
)

__all__ = [
    "LONELY_PSU_POLICIES",
    "ContrastResult",
    "LonelyPSUError",
    "SurveyDesign",
    "SurveyDesignError",
    "SurveyGLMResult",
    "SurveyModelError",
    "SurveyOrdinalResult",
    "WaldTestResult",
    "svyglm",
    "svyolr",
]
