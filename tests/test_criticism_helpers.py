"""Shared by the criticism and SBC tests (no tests here): a simulated evidence folder and its fits,
built once per process so that every test reuses the same nutpie-compiled models."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import yaml

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "evidence"
N_PER_CLUSTER = 14


def _case(i: int, kind: str) -> dict:
    # Two clusters that conditional independence cannot reproduce, and every case bilateral: far
    # more than the cohort (1 of 10 under L, weight 1) allows.
    if kind == "lepto":
        f = {"lineage": "T-ALL", "laterality": "bilateral", "other_cranial_nerves": "one_or_more",
             "csf": [{"result": "positive", "method": "cytology"}], "mri": "multiple_nerve_or_leptomeningeal"}
    else:
        f = {"lineage": "T-ALL", "laterality": "bilateral", "other_cranial_nerves": "none",
             "csf": [{"result": "negative", "method": "cytology"}, {"result": "negative", "method": "cytology"}],
             "mri": "facial_nerve_enhancement"}
    return {"id": f"sim_{kind}_{i}", "ref": "case2021", "phase": "at_diagnosis", "form": "unknown",
            "findings": f, "proven_by": ["biopsy"]}


@functools.cache
def simulated_evidence_dir() -> Path:
    """The fixture evidence with 28 simulated cases appended (see :func:`_case`)."""
    out = Path(tempfile.mkdtemp(prefix="palsy-criticism-")) / "evidence"
    shutil.copytree(FIXTURE, out)
    doc = yaml.safe_load((out / "cases.yaml").read_text())
    doc["cases"] += [_case(i, k) for k in ("lepto", "peri") for i in range(N_PER_CLUSTER)]
    (out / "cases.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


@functools.cache
def simulated_evidence():
    from palsy.model import evidence as E

    return E.load(simulated_evidence_dir())


SETTINGS = dict(draws=500, tune=500, chains=2, seed=7)


@functools.cache
def simulated_fit(variant: str):
    """(Draws, Design) of ``variant`` on the simulated evidence (reduced settings, not cached on disk)."""
    from palsy.model import cache as C
    from palsy.model import criticism as K
    from palsy.model import fit

    ev = simulated_evidence()
    settings = C.Settings(**SETTINGS)
    dt, d = fit.sample(variant, ev, settings)
    return K.draws_from_fit(dt, d, ev, settings), d
