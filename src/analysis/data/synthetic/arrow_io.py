"""Arrow and Parquet: sample columns as Arrow tables built from the raw arrays, and back.

Tables are assembled from code arrays and byte buffers directly (dictionary columns,
fixed-width strings), which is what makes millions of rows per second possible.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.data import schema
from analysis.data.synthetic.model import WorldModel
from analysis.data.world_spec import COLUMNS

SOURCE = "synthetic"
SURVEY_YEAR = 2019


@lru_cache(maxsize=1)
def arrow_schema() -> pa.Schema:
    """The Arrow schema (with pandas metadata) of the synthetic columns."""
    return pa.Schema.from_pandas(schema.empty_frame(list(COLUMNS)), preserve_index=False)


def _labels(column: str) -> pa.Array:
    return pa.array(list(schema.column_specs()[column].levels), type=pa.large_string())


def _dictionary(column: str, codes: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8), type=pa.int8()),
        _labels(column),
        ordered=arrow_type.ordered,
    )


def respondent_ids(start: int, n: int, total: int) -> pa.Array:
    """Ids "syn00000001", ... for respondents start+1 .. start+n (zero-padded, >= 8 digits),
    built directly as Arrow string buffers (fast for millions of rows)."""
    digits = max(8, len(str(total)))
    number = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    chars = np.empty((n, 3 + digits), dtype=np.uint8)
    chars[:, :3] = np.frombuffer(b"syn", dtype=np.uint8)
    for position in range(2 + digits, 2, -1):  # last digit first
        quotient = number // 10
        chars[:, position] = (number - quotient * 10).astype(np.uint8) + ord("0")
        number = quotient
    offsets = np.arange(0, (n + 1) * (3 + digits), 3 + digits, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )


def _fixed_width_strings(labels: list[str], index: np.ndarray) -> pa.Array:
    """Arrow strings labels[index] for labels of equal length, built from one byte array."""
    width = len(labels[0])
    table = np.frombuffer("".join(labels).encode(), dtype=np.uint8).reshape(len(labels), width)
    chars = table[index]
    offsets = np.arange(0, (index.shape[0] + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), index.shape[0], [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )


def arrow_table(
    m: WorldModel, people: dict, psu: np.ndarray, weight: np.ndarray, start: int, total: int
) -> pa.Table:
    """The schema's columns for respondents ``start`` .. of ``total``: `simulate_people`'s
    arrays, their PSUs (stratum labels follow) and final weights."""
    per = m.params["psus_per_stratum"]
    n_strata = m.params["n_strata"]
    n = psu.shape[0]
    w_h, w_p = len(str(n_strata)), len(str(per))
    stratum_labels = [f"h{s + 1:0{w_h}d}" for s in range(n_strata)]
    psu_labels = [f"{h}-p{j + 1:0{w_p}d}" for h in stratum_labels for j in range(per)]
    sch = arrow_schema()
    t = {f.name: f.type for f in sch}
    columns = {
        "source": pa.repeat(pa.scalar(SOURCE, pa.large_string()), n),
        "survey_year": pa.array(np.full(n, SURVEY_YEAR, dtype=np.int64)),
        "respondent_id": respondent_ids(start, n, total),
        "weight": pa.array(weight),
        "stratum": _fixed_width_strings(stratum_labels, psu // per),
        "psu": _fixed_width_strings(psu_labels, psu),
        "age": pa.array(people["age"]),
        "sex": _dictionary("sex", (~people["female"]).astype(np.int8), t["sex"]),
        "bmi": pa.array(people["bmi"]),
        "education": _dictionary("education", people["education"], t["education"]),
        "physical_activity": _dictionary(
            "physical_activity", people["activity"], t["physical_activity"]
        ),
        "back_pain_severity": _dictionary(
            "back_pain_severity", people["severity"], t["back_pain_severity"]
        ),
        "chronic_pain": pa.array(people["chronic"]),
        "pain_intensity": pa.array(people["intensity"]),
        "gad7_score": pa.array(people["gad7"]),
        "gad7_category": _dictionary("gad7_category", people["gad7_cat"], t["gad7_category"]),
        "anxiety_frequency": _dictionary(
            "anxiety_frequency", people["frequency"], t["anxiety_frequency"]
        ),
        "anxiety_medication": pa.array(people["medication"]),
        "phq8_score": pa.array(people["phq8"]),
        "phq8_category": _dictionary("phq8_category", people["phq8_cat"], t["phq8_category"]),
        "muscle_tension": pa.array(people["tension"]),
        "benzodiazepine_use": pa.array(people["benzo"]),
    }
    return pa.Table.from_arrays([columns[f.name] for f in sch], schema=sch)


def to_schema_frame(table: pa.Table) -> pd.DataFrame:
    """A synthetic Arrow table as a pandas frame with exactly the schema's dtypes."""
    df = table.to_pandas()
    for name in df.columns:  # make the dtypes exactly the schema's
        want = schema.column_specs()[name].pandas_dtype
        if df[name].dtype != want:
            df[name] = df[name].astype(want)
    return df


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a synthetic Parquet file back with the schema's dtypes."""
    return to_schema_frame(pq.read_table(path))


# Dictionary-encode (and keep min/max statistics for) the columns with few distinct values
# only: doing it for the continuous ones and the ids costs time and saves nothing.
_NO_DICTIONARY = {"respondent_id", "weight", "bmi", "muscle_tension"}


def write_parquet_in_background(path: Path, sch: pa.Schema, tables: Iterator[pa.Table]) -> None:
    """Write tables to Parquet in a second thread while the next chunk is being drawn."""
    chunks: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            few_values = [f.name for f in sch if f.name not in _NO_DICTIONARY]
            with pq.ParquetWriter(
                path,
                sch,
                compression="snappy",
                use_dictionary=few_values,
                write_statistics=few_values,
            ) as writer:
                while (table := chunks.get()) is not None:
                    writer.write_table(table.replace_schema_metadata(sch.metadata))
        except BaseException as exc:
            failure.append(exc)
            while chunks.get() is not None:  # drain so the producer never blocks
                pass

    worker = threading.Thread(target=consume, name="synth-parquet-writer", daemon=True)
    worker.start()
    try:
        for table in tables:
            if failure:
                break
            chunks.put(table)
    finally:
        chunks.put(None)
        worker.join()
    if failure:
        raise failure[0]
