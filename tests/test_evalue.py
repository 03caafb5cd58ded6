"""E-values against the worked examples of VanderWeele & Ding (Ann Intern Med 2017).

The published figures (rounded to 2 decimals in the paper and the EValue R package
vignette) are: smoking and lung cancer RR 10.73 (8.02-14.36) -> 20.95 and 15.52;
breastfeeding and infant death OR 3.9 (1.8-8.7), rare outcome -> 7.26 and 3.00;
antidepressants in pregnancy and leukemia RR 0.80 (0.71-0.91) -> 1.81 and 1.43.
"""

import math

import pytest

from analysis.models.evalue import evalue, evalue_rr


def test_smoking_lung_cancer_example():
    e = evalue(10.73, 8.02, 14.36, measure="risk ratio")
    assert e.point == pytest.approx(20.95, abs=0.005)
    assert e.ci == pytest.approx(15.52, abs=0.005)


def test_breastfeeding_odds_ratio_rare_outcome_example():
    e = evalue(3.9, 1.8, 8.7, measure="odds ratio", rare=True)
    assert e.point == pytest.approx(7.26, abs=0.005)
    assert e.ci == pytest.approx(3.00, abs=0.005)


def test_protective_leukemia_example_uses_upper_limit():
    e = evalue(0.80, 0.71, 0.91, measure="risk ratio")
    assert e.point == pytest.approx(1.81, abs=0.005)
    assert e.ci == pytest.approx(1.43, abs=0.005)


def test_closed_form_and_symmetry():
    for rr in (1.0, 1.2, 2.0, 5.5):
        assert evalue_rr(rr) == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
        assert evalue_rr(1 / rr) == pytest.approx(evalue_rr(rr))
    assert evalue_rr(1.0) == 1.0


def test_common_outcome_odds_ratio_uses_square_root():
    e = evalue(0.86, 0.75, 0.99, measure="odds ratio", rare=False)
    assert e.rr == pytest.approx(math.sqrt(0.86))
    assert e.point == pytest.approx(evalue_rr(math.sqrt(0.86)))
    assert e.ci == pytest.approx(evalue_rr(math.sqrt(0.99)))
    # a common-outcome OR is weaker on the RR scale than the same rare-outcome OR
    assert e.point < evalue(0.86, 0.75, 0.99, measure="odds ratio", rare=True).point


def test_common_outcome_hazard_ratio_conversion():
    hr = 0.56
    e = evalue(hr, 0.46, 0.69, measure="hazard ratio", rare=False)
    rr = (1 - 0.5 ** math.sqrt(hr)) / (1 - 0.5 ** math.sqrt(1 / hr))
    assert e.rr == pytest.approx(rr)
    assert e.point == pytest.approx(evalue_rr(rr))


def test_ci_covering_null_gives_one():
    assert evalue(1.5, 0.9, 2.5, measure="prevalence ratio").ci == 1.0
    assert evalue(0.7, 0.4, 1.1, measure="risk ratio").ci == 1.0


def test_standardized_mean_difference():
    e = evalue(0.5, measure="standardized mean difference", se=0.1)
    assert e.rr == pytest.approx(math.exp(0.455))
    assert e.ci == pytest.approx(evalue_rr(math.exp(0.455 - 0.178)))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="rare"):
        evalue(2.0, 1.5, 2.5, measure="odds ratio")
    with pytest.raises(ValueError, match="unknown measure"):
        evalue(2.0, measure="mean difference")
    with pytest.raises(ValueError, match="positive"):
        evalue(-1.0, measure="risk ratio")
    with pytest.raises(ValueError, match="outside its CI"):
        evalue(3.0, 1.0, 2.0, measure="risk ratio")


def test_an_estimate_on_its_ci_limit_up_to_float_rounding_is_accepted():
    """1.7000000000000002 with a CI up to 1.7 is the same number, not an inconsistency."""
    e = evalue(1.7000000000000002, 0.58, 1.7, measure="odds ratio", rare=False)
    assert e.point == pytest.approx(evalue(1.7, 0.58, 1.7, measure="odds ratio", rare=False).point)
    with pytest.raises(ValueError, match="outside its CI"):
        evalue(1.8, 0.58, 1.7, measure="odds ratio", rare=False)
