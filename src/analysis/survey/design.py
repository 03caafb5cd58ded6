"""`SurveyDesign`: a stratified, clustered, weighted sample, carried through every analysis.

This is the one design object of the project, as in R's ``survey`` package. Its core is
`SurveyDesign.total_covariance`, the Taylor-linearisation (with-replacement, ultimate
cluster) variance of a weighted total, computed exactly as R's ``svyrecvar`` does for a
one-stage design without finite-population correction, including R's four lonely-PSU
policies. Every estimator (means, proportions, domains, regression) reduces to it: the
estimator supplies its weighted influence scores, the design supplies their variance.

Domains (subgroups) never drop rows: an estimator zeroes the weights outside the domain,
so strata and PSU counts stay those of the full design, as R's ``subset()`` keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from analysis.survey.errors import LonelyPSUError, SurveyDesignError
from analysis.survey.estimates import EstimatesMixin

__all__ = ["LONELY_PSU_POLICIES", "LonelyPSUError", "SurveyDesign", "SurveyDesignError"]

LONELY_PSU_POLICIES = ("fail", "certainty", "remove", "adjust", "average")


@dataclass(frozen=True)
class DesignInfo:
    n_obs: int
    n_strata: int
    n_psu: int
    n_lonely_strata: int
    df: int
    lonely_psu: str

    def __str__(self) -> str:
        return (
            f"{self.n_obs} observations, {self.n_strata} strata, {self.n_psu} PSUs, "
            f"design df {self.df}, lonely-PSU policy '{self.lonely_psu}'"
            + (f" ({self.n_lonely_strata} lonely strata)" if self.n_lonely_strata else "")
        )


class SurveyDesign(EstimatesMixin):
    """Weights, strata and PSUs of a sample, with the data they describe.

    Estimates are its methods (`analysis.survey.estimates.EstimatesMixin`):
    ``design.mean("x")``, ``design.proportion("y", by="group")``, ``design.total``,
    ``design.ratio``, ``design.prevalence_ratio``.

    Parameters
    ----------
    data : the respondents (one row each).
    weight : column of sampling weights (> 0; R's ``weights=``).
    strata : column of strata, or None for an unstratified design.
    psu : column of primary sampling units, or None (each row its own PSU: R's ``ids=~1``).
    nest : PSU labels are only unique within strata (R's ``nest=TRUE``); without it, a label
        reused in two strata is an error, as in R.
    lonely_psu : what a stratum with one PSU contributes, with R's meanings
        (``options(survey.lonely.psu=)``): 'fail' (error, the default), 'certainty' and 'remove'
        (nothing), 'adjust' (centred at the population mean instead of the stratum mean),
        'average' (the average variance of the other strata).
    """

    def __init__(
        self,
        data: pd.DataFrame,
        *,
        weight: str,
        strata: str | None = None,
        psu: str | None = None,
        nest: bool = False,
        lonely_psu: str = "fail",
        label: str | None = None,
    ) -> None:
        if lonely_psu not in LONELY_PSU_POLICIES:
            raise SurveyDesignError(
                f"lonely_psu must be one of {LONELY_PSU_POLICIES}, got {lonely_psu!r}"
            )
        self.data = data
        self.weight_column = weight
        self.strata_column = strata
        self.psu_column = psu
        self.nest = nest
        self.lonely_psu = lonely_psu
        self.label = label or "design"
        self.weights = self._check_weights(data, weight)
        n = len(data)
        stratum_codes, self.stratum_labels = self._codes(data, strata, n, "stratum")
        psu_keys = self._psu_keys(data, psu, stratum_codes, n)
        self._build_structure(stratum_codes, psu_keys)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _check_weights(data: pd.DataFrame, weight: str) -> np.ndarray:
        if weight not in data.columns:
            raise SurveyDesignError(f"weight column '{weight}' is not in the data")
        raw = data[weight]
        w = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        n_missing = int(raw.isna().sum())
        if n_missing:
            raise SurveyDesignError(f"weight column '{weight}': {n_missing} missing value(s)")
        n_text = int(np.isnan(w).sum())
        if n_text:
            raise SurveyDesignError(
                f"weight column '{weight}': {n_text} non-numeric value(s) "
                f"(e.g. {raw[np.isnan(w)].iloc[0]!r}); weights must be numbers > 0"
            )
        n_infinite = int(np.isinf(w).sum())
        if n_infinite:
            raise SurveyDesignError(f"weight column '{weight}': {n_infinite} infinite value(s)")
        n_bad = int((w <= 0).sum())
        if n_bad:
            raise SurveyDesignError(
                f"weight column '{weight}': {n_bad} non-positive value(s); weights must be > 0 "
                "(drop zero-weight rows or analyse them as a domain)"
            )
        return w

    @staticmethod
    def _codes(data: pd.DataFrame, column: str | None, n: int, role: str):
        if column is None:
            return np.zeros(n, dtype=np.int64), np.array(["(all)"], dtype=object)
        if column not in data.columns:
            raise SurveyDesignError(f"{role} column '{column}' is not in the data")
        values = data[column]
        n_missing = int(values.isna().sum())
        if n_missing:
            raise SurveyDesignError(f"{role} column '{column}': {n_missing} missing value(s)")
        codes, labels = pd.factorize(values, sort=True)
        return codes.astype(np.int64), np.asarray(labels, dtype=object)

    def _psu_keys(self, data, psu, stratum_codes, n) -> np.ndarray:
        if psu is None:
            return np.arange(n, dtype=np.int64)
        psu_codes, _ = self._codes(data, psu, n, "PSU")
        pairs = pd.DataFrame({"s": stratum_codes, "p": psu_codes}).drop_duplicates()
        if not self.nest and self.strata_column is not None:
            reused = pairs["p"].duplicated(keep=False)
            n_reused = int(pairs.loc[reused, "p"].nunique())
            if n_reused:
                raise SurveyDesignError(
                    f"PSU column '{psu}': {n_reused} PSU label(s) appear in more than one stratum "
                    f"of '{self.strata_column}'; pass nest=True if PSU labels are only unique "
                    "within strata (R: 'Clusters not nested in strata')"
                )
        # a PSU is identified by (stratum, psu label)
        return stratum_codes * (int(psu_codes.max()) + 1) + psu_codes

    def _build_structure(self, stratum_codes: np.ndarray, psu_keys: np.ndarray) -> None:
        psu_index = np.unique(psu_keys, return_inverse=True)[1]
        n = len(psu_keys)
        self.n_obs = n
        self._psu_of_row = psu_index.astype(np.int64)
        n_psu = int(self._psu_of_row.max()) + 1 if n else 0
        stratum_of_psu = np.zeros(n_psu, dtype=np.int64)
        stratum_of_psu[self._psu_of_row] = stratum_codes
        self._stratum_of_psu = stratum_of_psu
        n_strata = len(self.stratum_labels)
        self._psu_per_stratum = np.bincount(stratum_of_psu, minlength=n_strata)
        self.n_psu = n_psu
        self.n_strata = n_strata
        lonely = self._psu_per_stratum == 1
        self._lonely_strata = np.flatnonzero(lonely)
        if lonely.any() and self.lonely_psu == "fail":
            examples = ", ".join(repr(s) for s in self.stratum_labels[self._lonely_strata][:5])
            raise LonelyPSUError(
                f"stratum column '{self.strata_column}': {int(lonely.sum())} stratum/strata with a "
                f"single PSU (e.g. {examples}); choose lonely_psu='adjust', 'average', "
                "'certainty' or 'remove' (R: options(survey.lonely.psu=...))"
            )
        # row -> PSU indicator, for PSU totals in one sparse product
        self._row_to_psu = sp.csr_matrix(
            (np.ones(n), (self._psu_of_row, np.arange(n))), shape=(n_psu, n)
        )
        self._scale = np.where(
            self._psu_per_stratum > 1,
            self._psu_per_stratum / np.maximum(self._psu_per_stratum - 1, 1),
            1.0,
        )

    # ------------------------------------------------------------------ properties
    @property
    def df(self) -> int:
        """Design degrees of freedom: number of PSUs minus number of strata (R's ``degf``)."""
        return self.n_psu - self.n_strata

    @property
    def info(self) -> DesignInfo:
        return DesignInfo(
            self.n_obs,
            self.n_strata,
            self.n_psu,
            len(self._lonely_strata),
            self.df,
            self.lonely_psu,
        )

    def __repr__(self) -> str:
        return f"SurveyDesign({self.label}: {self.info})"

    def summary(self) -> str:
        w = self.weights
        lines = [
            f"Survey design: {self.label}",
            f"  weight: {self.weight_column}; strata: {self.strata_column}; PSU: {self.psu_column}"
            f"{' (nested)' if self.nest else ''}",
            f"  {self.info}",
            f"  weights: sum {w.sum():,.1f}, min {w.min():,.3f}, max {w.max():,.3f}, "
            f"CV {w.std() / w.mean():.3f}",
            f"  Kish design effect of unequal weighting: {1 + (w.std() / w.mean()) ** 2:.3f}",
        ]
        return "\n".join(lines)

    # ------------------------------------------------------------------ the variance kernel
    @property
    def psu_of_row(self) -> np.ndarray:
        """Index (0 .. n_psu-1) of each row's PSU; PSUs are (stratum, PSU label) pairs."""
        return self._psu_of_row

    @property
    def stratum_of_row(self) -> np.ndarray:
        """Index (0 .. n_strata-1) of each row's stratum."""
        return self._stratum_of_psu[self._psu_of_row]

    def strata_with_rows(self, rows: np.ndarray) -> np.ndarray:
        """Boolean mask over strata: which strata hold at least one of the selected rows."""
        counts = np.bincount(
            self.stratum_of_row[np.asarray(rows, dtype=bool)], minlength=self.n_strata
        )
        return counts > 0

    def psu_totals(self, scores: np.ndarray) -> np.ndarray:
        """Sum of each score column within each PSU (n_psu x p)."""
        return np.asarray(self._row_to_psu @ scores)

    def total_covariance(self, scores: np.ndarray, *, strata_present=None) -> np.ndarray:
        """Covariance matrix of the column totals of ``scores`` under the design.

        ``scores`` (n x p, or n) are already weighted: R's ``x / prob`` for a total, the weighted
        influence functions for other statistics. Rows outside a domain carry zero. This is
        R's ``svyrecvar`` for a one-stage with-replacement design. ``strata_present``: see
        `psu_total_covariance`.
        """
        x = np.asarray(scores, dtype="float64")
        vector = x.ndim == 1
        if vector:
            x = x[:, None]
        if x.shape[0] != self.n_obs:
            raise ValueError(f"scores have {x.shape[0]} rows, the design has {self.n_obs}")
        v = self.psu_total_covariance(self.psu_totals(x), strata_present=strata_present)
        return float(v[0, 0]) if vector else v

    def psu_total_covariance(self, z: np.ndarray, *, strata_present=None) -> np.ndarray:
        """Covariance of the column sums of PSU totals ``z`` (n_psu x p): the kernel itself.

        Between-PSU variation within each stratum, scaled by n_h / (n_h - 1). Lonely strata
        follow the policy. Under 'average', R multiplies the sum over strata with several
        PSUs by (number of strata) / (number of such strata), counting only the strata that
        hold rows of the (sub)design analysed: ``strata_present`` (boolean mask over strata,
        default all) says which; it changes nothing under the other policies.
        """
        z = np.asarray(z, dtype="float64")
        if z.ndim == 1:
            z = z[:, None]
        if z.shape[0] != self.n_psu:
            raise ValueError(f"PSU totals have {z.shape[0]} rows, the design has {self.n_psu} PSUs")
        stratum = self._stratum_of_psu
        counts = self._psu_per_stratum
        sums = np.zeros((self.n_strata, z.shape[1]))
        np.add.at(sums, stratum, z)
        means = sums / np.maximum(counts, 1)[:, None]
        lonely_psu = counts[stratum] == 1
        centred = z - means[stratum]
        weight = np.sqrt(self._scale[stratum])[:, None]
        if self.lonely_psu == "adjust":
            centred[lonely_psu] = z[lonely_psu]  # R: no centring for a lonely stratum
        elif self.lonely_psu in ("certainty", "remove", "average"):
            centred[lonely_psu] = 0.0
        dev = centred * weight
        v = dev.T @ dev
        if self.lonely_psu == "average" and len(self._lonely_strata):
            v = v * self.average_policy_factor(strata_present)
        return v

    def average_policy_factor(self, strata_present=None) -> float:
        """R's factor (strata present) / (present strata with several PSUs) under 'average'.

        1 under the other policies. NaN when every present stratum is lonely (as in R).
        """
        if self.lonely_psu != "average" or not len(self._lonely_strata):
            return 1.0
        present = (
            np.ones(self.n_strata, dtype=bool)
            if strata_present is None
            else np.asarray(strata_present, dtype=bool)
        )
        n_present = int(present.sum())
        n_ok = int((present & (self._psu_per_stratum > 1)).sum())
        if n_present == 0:
            return 1.0
        return n_present / n_ok if n_ok else float("nan")
