"""The census of the synthetic world: every truth from one large draw of its population.

The population is drawn in chunks (``truth_population_size`` persons, fixed ``truth_seed``);
prevalences and ratios accumulate with their Monte-Carlo variance, natural effects person by
person, and the census fits (`analysis.models.synthetic_census_fits`) over cell sums.
Wherever the structural model gives a probability in closed form (back pain and chronic
pain given their causes), the probability replaces the 0/1 draw (Rao-Blackwellisation).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from tqdm.auto import tqdm

from analysis.data.synthetic import AGE_GROUPS, WorldModel
from analysis.data.synthetic.model import (
    GAD7_ITEMS,
    PHQ8_ITEMS,
    benzo_eta,
    chronic_eta,
    draw_population,
    medication_eta,
    normal_tail_of_scores,
    severity_probs_by_benzo,
    tension_of,
)
from analysis.models.synthetic_census_fits import (
    LEVELS,
    N_NB_CELLS,
    REFERENCE_N,
    Cells,
    cell_codes,
    logistic_truths,
    nb_cell_codes,
    notebook_spec,
    notebook_truths,
    ordinal_truths,
)

_CHUNK = 500_000


class _Ratio:
    """Accumulates a population ratio E[a] / E[b] and its Monte-Carlo variance."""

    def __init__(self) -> None:
        self.s = np.zeros(5)  # sum a, sum b, sum a^2, sum b^2, sum ab
        self.n = 0

    def add(self, a: np.ndarray, b: np.ndarray | None = None) -> None:
        b = np.ones_like(a) if b is None else b
        self.s += [a.sum(), b.sum(), (a * a).sum(), (b * b).sum(), (a * b).sum()]
        self.n += a.shape[0]

    @property
    def value(self) -> float:
        return float(self.s[0] / self.s[1])

    @property
    def denominator(self) -> float:
        return float(self.s[1] / self.n)

    @property
    def mc_se(self) -> float:
        sa, sb, saa, sbb, sab = self.s / self.n
        r = sa / sb
        var = (saa - 2 * r * sab + r * r * sbb) - (sa - r * sb) ** 2
        return float(math.sqrt(max(var, 0.0) / self.n) / sb)


def _exact_score_prevalences(model: WorldModel) -> dict[str, float]:
    """GAD-7 and PHQ-8 prevalences computed exactly (Gauss-Hermite over the latent)."""
    p, d = model.params, model.derived
    a, b, kappa = p["gad7_item_discrimination"], model.item_b, d["latent_skew"]
    ages = model.arr("age_group_shares")
    fem = p["female_share"]
    mu = np.asarray(d["anxiety_age_intercepts"])
    means = np.concatenate([mu, mu + d["anxiety_female"]])  # men then women
    sd = math.sqrt(1 + p["anxiety_psu_sd"] ** 2)
    gad = normal_tail_of_scores(means, sd, kappa, GAD7_ITEMS, a, b).reshape(2, 4, 3)
    men, women = ages @ gad[0], ages @ gad[1]
    both = (1 - fem) * men + fem * women
    dep = normal_tail_of_scores(
        np.array([d["depression_intercept"], d["depression_intercept"] + d["depression_female"]]),
        1.0,
        kappa,
        PHQ8_ITEMS,
        a,
        b,
    )
    return {
        "prevalence_gad7_ge5": both[0],
        "prevalence_gad7_ge5_women": women[0],
        "prevalence_gad7_ge5_men": men[0],
        "prevalence_gad7_ge10": both[1],
        "prevalence_gad7_ge15": both[2],
        "prevalence_gad7_mild": both[0] - both[1],
        "prevalence_gad7_moderate": both[1] - both[2],
        "prevalence_gad7_severe": both[2],
        "prevalence_phq8_ge5": (1 - fem) * dep[0, 0] + fem * dep[1, 0],
    }


def census(
    model: WorldModel, n_population: int, seed: int, *, progress: bool
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Every truth of the world, from a census of ``n_population`` persons drawn with ``seed``:
    (values sorted by name, Monte-Carlo SEs, reference SEs at n = 30,000)."""
    p = model.params
    cuts = model.severity_cuts()
    beta_b = p["benzodiazepine_pain_log_or"]
    pain_by_cat = model.pain_by_category()
    beta_t = p["pain_log_or_tension_per_point"]

    ratios: dict[str, _Ratio] = {}

    def ratio(name: str, a: np.ndarray, b: np.ndarray | None = None) -> None:
        ratios.setdefault(name, _Ratio()).add(
            np.asarray(a, float), None if b is None else np.asarray(b, float)
        )

    cells = Cells()
    nb = notebook_spec()
    nb_cells = Cells(N_NB_CELLS)
    contrasts: dict[str, list[float]] = {}

    def contrast(name: str, values: np.ndarray) -> None:
        acc = contrasts.setdefault(name, [0.0, 0.0, 0])
        acc[0] += float(values.sum())
        acc[1] += float((values * values).sum())
        acc[2] += values.shape[0]

    chunks = range(0, n_population, _CHUNK)
    for k, start in enumerate(
        tqdm(chunks, desc="synthetic truth", unit="chunk", disable=not progress)
    ):
        size = min(_CHUNK, n_population - start)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(k,))))
        d = draw_population(model, rng, size, keep_latent=True)
        g, female, gcat = d["age_group"], d["female"], d["gad7_cat"]
        eta0 = d["eta0"]
        q = np.stack(
            [
                special.expit(benzo_eta(model, gcat, d["medication"], np.full(size, lv)))
                for lv in range(4)
            ],
            axis=1,
        )
        joint_b, joint_nb = severity_probs_by_benzo(eta0, cuts, q, beta_b)
        sev = joint_b + joint_nb
        any_pain = 1.0 - sev[:, 0]
        chronic_by_level = np.stack(
            [special.expit(chronic_eta(model, g, female, np.full(size, lv))) for lv in range(4)],
            axis=1,
        )
        chronic = (sev * chronic_by_level).sum(axis=1)
        ge10 = (gcat >= 2).astype(float)
        ge5 = (gcat >= 1).astype(float)
        women = female.astype(float)

        ratio("prevalence_back_pain_any", any_pain)
        ratio("prevalence_back_pain_any_women", any_pain * women, women)
        ratio("prevalence_back_pain_any_men", any_pain * (1 - women), 1 - women)
        for lv, label in enumerate(AGE_GROUPS):
            mask = (g == lv).astype(float)
            ratio(f"prevalence_back_pain_any_age_{_age_key(label)}", any_pain * mask, mask)
        for lv, label in enumerate(("a_little", "somewhere_in_between", "a_lot"), start=1):
            ratio(f"prevalence_back_pain_{label}", sev[:, lv])
        ratio("prevalence_chronic_pain", chronic)
        ratio("prevalence_gad7_ge10_chronic_pain", ge10 * chronic, chronic)
        ratio("prevalence_gad7_ge10_no_chronic_pain", ge10 * (1 - chronic), 1 - chronic)
        ratio("prevalence_gad7_ge5_chronic_pain", ge5 * chronic, chronic)
        ratio("prevalence_gad7_ge5_no_chronic_pain", ge5 * (1 - chronic), 1 - chronic)
        ratio(
            "prevalence_anxiety_medication",
            special.expit(medication_eta(model, gcat, female)),
        )
        ratio("prevalence_benzodiazepine_use", joint_b.sum(axis=1))
        # joint cells for the crude benzodiazepine-pain odds ratio
        ratio("_benzo_pain", joint_b[:, 1:].sum(axis=1))
        ratio("_benzo_nopain", joint_b[:, 0])
        ratio("_nobenzo_pain", joint_nb[:, 1:].sum(axis=1))
        ratio("_nobenzo_nopain", joint_nb[:, 0])
        # prevalence by exposure level (for the reference SE of the effects)
        for lv in range(4):
            mask = (gcat == lv).astype(float)
            ratio(f"_pain_given_gad7_{lv}", any_pain * mask, mask)

        # natural effects of anxiety on untreated back pain through muscle tension
        base = d["eta_no_anxiety"]
        tension_none = tension_of(model, d["tension_base"], 0)
        p00 = special.expit(base + pain_by_cat[0] + beta_t * tension_none)
        for lv, name in enumerate(LEVELS, start=1):
            tension_a = tension_of(model, d["tension_base"], lv)
            paa = special.expit(base + pain_by_cat[lv] + beta_t * tension_a)
            pa0 = special.expit(base + pain_by_cat[lv] + beta_t * tension_none)
            contrast(f"nie_{name}_vs_none", paa - pa0)
            contrast(f"nde_{name}_vs_none", pa0 - p00)
            contrast(f"te_{name}_vs_none", paa - p00)
        # the (structural) effect of benzodiazepine use on untreated back pain
        contrast("benzodiazepine_effect_rd", special.expit(eta0 + beta_b) - special.expit(eta0))

        cells.add(cell_codes(d), any_pain, sev)
        nb_cells.add(nb_cell_codes(d, nb), any_pain, sev)

        # C1 as notebook 02 defines it: chronic pain together with back pain
        chronic_back = (sev[:, 1:] * chronic_by_level[:, 1:]).sum(axis=1)
        scale = p["anxiety_frequency_noise_scale"]
        weekly = special.expit((d["theta"] - model.derived["frequency_cuts"][2]) / scale)
        for name, x in (("gad7_ge10", ge10), ("anxiety_weekly_plus", weekly)):
            ratio(f"prevalence_{name}_among_chronic_back_pain", x * chronic_back, chronic_back)
            ratio(
                f"prevalence_{name}_among_no_chronic_back_pain",
                x * (1 - chronic_back),
                1 - chronic_back,
            )

    values: dict[str, float] = {}
    mc: dict[str, float] = {}
    ref: dict[str, float] = {}
    for name, acc in ratios.items():
        if name.startswith("_"):
            continue
        values[name] = acc.value
        mc[name] = acc.mc_se
        share = acc.denominator
        ref[name] = math.sqrt(acc.value * (1 - acc.value) / (REFERENCE_N * share))

    for key, value in _exact_score_prevalences(model).items():  # exact: no Monte-Carlo error
        values[key] = float(value)
        mc[key] = 0.0
        share = {"women": p["female_share"], "men": 1 - p["female_share"]}.get(
            key.rsplit("_", 1)[-1], 1.0
        )
        ref[key] = math.sqrt(value * (1 - value) / (REFERENCE_N * share))

    def prevalence_ratio(key: str, r1: _Ratio, r0: _Ratio) -> None:
        values[key] = r1.value / r0.value
        mc[key] = values[key] * math.hypot(r1.mc_se / r1.value, r0.mc_se / r0.value)
        ref[key] = values[key] * math.sqrt(
            (1 - r1.value) / (REFERENCE_N * r1.denominator * r1.value)
            + (1 - r0.value) / (REFERENCE_N * r0.denominator * r0.value)
        )

    # prevalence ratios of GAD-7 by chronic pain status (any site; and back pain, notebook 02)
    for cut in ("ge10", "ge5"):
        prevalence_ratio(
            f"prevalence_ratio_gad7_{cut}_chronic_pain",
            ratios[f"prevalence_gad7_{cut}_chronic_pain"],
            ratios[f"prevalence_gad7_{cut}_no_chronic_pain"],
        )
    for name in ("gad7_ge10", "anxiety_weekly_plus"):
        prevalence_ratio(
            f"prevalence_ratio_{name}_chronic_back_pain",
            ratios[f"prevalence_{name}_among_chronic_back_pain"],
            ratios[f"prevalence_{name}_among_no_chronic_back_pain"],
        )

    # crude (unadjusted) census odds ratio of back pain for benzodiazepine use
    c = {
        k: ratios[k].value
        for k in ("_benzo_pain", "_benzo_nopain", "_nobenzo_pain", "_nobenzo_nopain")
    }
    values["benzodiazepine_crude_or_back_pain_any"] = (c["_benzo_pain"] * c["_nobenzo_nopain"]) / (
        c["_benzo_nopain"] * c["_nobenzo_pain"]
    )

    # natural effects: means of the per-person contrasts
    share = {lv: ratios[f"_pain_given_gad7_{lv}"].denominator for lv in range(4)}
    prev = {lv: ratios[f"_pain_given_gad7_{lv}"].value for lv in range(4)}
    for name, (total, sq, n) in contrasts.items():
        mean = total / n
        sd = math.sqrt(max(sq / n - mean * mean, 0.0))
        if name.startswith("_"):
            continue
        values[name] = mean
        mc[name] = sd / math.sqrt(n)
    for lv, name in enumerate(LEVELS, start=1):
        proxy = math.sqrt(
            prev[lv] * (1 - prev[lv]) / (REFERENCE_N * share[lv])
            + prev[0] * (1 - prev[0]) / (REFERENCE_N * share[0])
        )
        for kind in ("nie", "nde", "te"):
            ref[f"{kind}_{name}_vs_none"] = proxy
    # moderate-or-worse: the moderate and severe contrasts mixed in population proportions
    w_mod = values["prevalence_gad7_moderate"] / values["prevalence_gad7_ge10"]
    w_sev = 1.0 - w_mod
    for kind in ("nie", "nde"):
        key = f"{kind}_moderate_or_worse_vs_none"
        values[key] = (
            w_mod * values[f"{kind}_moderate_vs_none"] + w_sev * values[f"{kind}_severe_vs_none"]
        )
        mc[key] = math.hypot(
            w_mod * mc[f"{kind}_moderate_vs_none"], w_sev * mc[f"{kind}_severe_vs_none"]
        )
    values["te_moderate_or_worse_vs_none"] = (
        values["nie_moderate_or_worse_vs_none"] + values["nde_moderate_or_worse_vs_none"]
    )
    mc["te_moderate_or_worse_vs_none"] = math.hypot(
        w_mod * mc["te_moderate_vs_none"], w_sev * mc["te_severe_vs_none"]
    )
    p_hi = (share[2] * prev[2] + share[3] * prev[3]) / (share[2] + share[3])
    proxy = math.sqrt(
        p_hi * (1 - p_hi) / (REFERENCE_N * (share[2] + share[3]))
        + prev[0] * (1 - prev[0]) / (REFERENCE_N * share[0])
    )
    for kind in ("nie", "nde", "te"):
        ref[f"{kind}_moderate_or_worse_vs_none"] = proxy
    values["benzodiazepine_effect_log_or"] = float(beta_b)
    mc["benzodiazepine_effect_log_or"] = 0.0

    logistic_truths(cells, values, mc, ref)
    ordinal_truths(cells, values, mc, ref)
    notebook_truths(nb_cells, nb, values, mc, ref)
    ordered = {k: values[k] for k in sorted(values)}
    return (
        ordered,
        {k: mc[k] for k in ordered if k in mc},
        {k: ref[k] for k in ordered if k in ref},
    )


def _age_key(label: str) -> str:
    return label.replace("-", "_").replace("+", "_plus")
