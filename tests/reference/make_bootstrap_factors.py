"""Export fixed subbootstrap rescaling factors from Python for make_bootstrap.R.

Run from this folder with the project's Python:  python make_bootstrap_factors.py
Writes bootstrap_factors_<design>.csv: one row per PSU (stratum, psu labels) and one column
per replicate. R rebuilds row-level replicate factors from them and computes replicate SEs
with svrepdesign(type = "subbootstrap"); tests/test_bootstrap.py compares against those.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.survey.bootstrap import bootstrap_psu_factors
from analysis.survey.design import SurveyDesign

HERE = Path(__file__).resolve().parent
REPLICATES = 50
SEED = 20261124


def designs() -> dict[str, SurveyDesign]:
    api = pd.read_csv(HERE / "data" / "apistrat.csv")
    api["row"] = np.arange(len(api))
    nh = pd.read_csv(HERE / "data" / "nhanes.csv")
    return {
        "apistrat": SurveyDesign(api, weight="pw", strata="stype", psu="row"),
        "nhanes": SurveyDesign(nh, weight="WTMEC2YR", strata="SDMVSTRA", psu="SDMVPSU", nest=True),
    }


def psu_labels(design: SurveyDesign) -> pd.DataFrame:
    d = design.data
    first = pd.DataFrame({"code": design._psu_of_row}).drop_duplicates("code")
    return pd.DataFrame(
        {
            "stratum": d[design.strata_column].to_numpy()[first.index],
            "psu": d[design.psu_column].to_numpy()[first.index],
        },
        index=first["code"].to_numpy(),
    ).sort_index()


def main() -> None:
    for name, design in designs().items():
        factors = bootstrap_psu_factors(design, REPLICATES, SEED)
        out = psu_labels(design)
        for b in range(REPLICATES):
            out[f"rep{b + 1}"] = factors[:, b]
        out.to_csv(HERE / f"bootstrap_factors_{name}.csv", index=False)


if __name__ == "__main__":
    main()
