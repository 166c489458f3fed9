"""A brief answer (what a card shows, :mod:`palsy.model.brief`) gives every number of the full answer, bit for
bit: the source patients, the vignettes and random patients over the whole schema (every finding known or
unknown, patient-only levels, up to the schema's LPs read by one or both methods, traumatic taps)."""

import copy
from pathlib import Path

import numpy as np
import pytest

from palsy.model import answer as A
from palsy.model import api, paths
from palsy.model import brief as B
from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import guidance as G

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setting(draws_subtype):
    pdir = paths.priors()
    return draws_subtype, A.Tables(draws_subtype), D.load(pdir), G.load(pdir, draws_subtype.causes)


def _random_patients(schema, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    sc, lp = schema, schema.lp
    out = []
    for i in range(n):
        known = rng.random()  # how much of the record is known, from almost nothing to everything
        d: dict = {"id": f"random-{i}"}
        for name in sc.categorical:
            if rng.random() < known:
                allowed = sc.by_name[name].allowed
                d[name] = str(allowed[rng.integers(len(allowed))])
        taps = []
        for _ in range(rng.integers(0, lp.max_lps + 1) if rng.random() < 0.7 else 0):
            methods = [m for m in lp.methods if rng.random() < 0.6] or [lp.methods[0]]
            tap = {m: str(lp.results[rng.integers(len(lp.results))]) for m in methods}
            if rng.random() < 0.3:
                tap["traumatic"] = str(lp.traumatic[rng.integers(len(lp.traumatic))])
            taps.append(",".join(f"{k}={v}" for k, v in tap.items()))
        if taps:
            d[lp.name] = taps
        out.append(d)
    return out


def _patients(schema) -> list[F.Patient]:
    out = [F.parse_patient(api.read_patient_file(p), str(p), schema=schema) for p in sorted((ROOT / "patients").glob("*.yaml"))]
    out += [F.parse_patient(api.read_patient_file(p)["patient"], str(p), schema=schema)  # a vignette: its patient
            for p in sorted((ROOT / "tests/fixtures/vignettes").glob("*.yaml"))]
    out += [F.parse_patient(d, "random", schema=schema) for d in _random_patients(schema, 120, 11)]
    out.append(F.parse_patient({}, "empty", schema=schema))  # nothing known: no player at all
    return out


def _as_in_brief(full: dict, key: str):
    """The full answer's value of ``key`` as the brief gives it (the prior's summaries left out; the further
    negative LPs not counted)."""
    v = full[key]
    if key == "causes":
        return [{"cause": c["cause"], "probability": c["probability"]} for c in v]
    if key == "log_odds":
        return {"posterior": v["posterior"]}
    if key == "decision" and v is not None:
        return {**v, "negative_lps_to_low": None}
    return v


def test_the_brief_gives_the_full_answers_numbers_bit_for_bit(setting):
    draws, tables, settings, guidance = setting
    patients = _patients(draws.schema)
    assert len(patients) > 120
    kinds = set()
    for p in patients:
        got = B.brief(p, draws, tables=tables, decision_settings=settings, guidance=guidance)
        # Shapley values as palsy posterior computes them for the files' patients; left out (the costliest part,
        # which no number compared reads) for the random ones
        full = A.answer(p, draws, tables=tables, decision_settings=settings, guidance=guidance, leave_out=False,
                        rests_on=False, shapley=not p.id.startswith("random-")).to_dict()
        assert tuple(got) == B.KEYS
        for key in B.KEYS:
            assert got[key] == _as_in_brief(full, key), (p.to_dict(), key)
        kinds.add((full["decision"]["action"], full["in_scope"], full["atypical"]["flag"]))
        kinds |= {("urgency", a["urgency"]) for a in full["actions"]}
    # the patients reach every zone of the decision, escalating and work-up actions, in scope and out of it, and
    # findings that fit none of the causes
    assert {k[0] for k in kinds if k[0] != "urgency"} == {"no_test", "test", "treat"}
    assert {("urgency", "escalation"), ("urgency", "workup")} <= kinds
    assert {k[1] for k in kinds if k[0] != "urgency"} == {True, False}
    assert any(k[2] is True for k in kinds if k[0] != "urgency")


def test_the_brief_without_decision_settings_and_with_another_interval(setting):
    draws, tables, _, guidance = setting
    p = F.parse_patient(api.read_patient_file(ROOT / "patients/source-001.yaml"), "source-001", schema=draws.schema)
    got = B.brief(p, draws, tables=tables, ci=0.8, guidance=guidance)
    full = A.answer(p, draws, tables=tables, ci=0.8, guidance=guidance, leave_out=False, rests_on=False).to_dict()
    assert got["decision"] is None and got["probability"] == full["probability"] and got["probability"]["ci"] == 0.8
    assert got["actions"] == full["actions"]


def test_the_brief_refuses_what_the_answer_refuses(setting):
    draws, tables, settings, _ = setting
    p = F.parse_patient({"lineage": "T-ALL"}, "p", schema=draws.schema)
    with pytest.raises(F.InputError, match="ci"):
        B.brief(p, draws, tables=tables, ci=1.0)
    elsewhere = copy.copy(draws.schema)  # another schema (a schema is its content's hash)
    elsewhere.hash = "0" * 64
    other = F.parse_patient({"lineage": "T-ALL"}, "p", schema=elsewhere)
    with pytest.raises(F.InputError, match="schema"):
        B.brief(other, draws, tables=tables)
    with pytest.raises(F.InputError, match="schema"):
        A.answer(other, draws, tables=tables)
