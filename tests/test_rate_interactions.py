"""A cause's interactions in ``rates.yaml`` (docs/design.md §3): a multiplier of the strata where several context
findings each have a given level, checked like the other factors, read by one function wherever a factor's name is
read, and palsy's one (AML without a recent vinca dose) keeping vincristine from leading an AML differential."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from conftest import FIXTURE_EVIDENCE, REPO

from palsy.model import evidence as E
from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import rates as R
from palsy.model import rests_on as RO

INTERACTION = {"lognormal": {"median": 0.05, "factor90": 3}, "kind": "expert_judgment", "reasoning": "a test"}


def _with_interactions(tmp_path, cause: str, interactions: dict):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    doc = yaml.safe_load((d / "rates.yaml").read_text())
    doc["rates"][cause]["interactions"] = interactions
    (d / "rates.yaml").write_text(yaml.safe_dump(doc))
    return d


@pytest.mark.parametrize("key, expect", [
    ("lineage=AML", ["one level alone is a multiplier", "multipliers.lineage"]),
    ("lineage=AML & lineage=T-ALL", ["finding=level & finding=level", "each once"]),
    ("lineage AML & recent_vincristine=no", ["finding=level & finding=level"]),
    ("lineage=AML & & recent_vincristine=no", ["finding=level & finding=level"]),
    ("lineage=AML & age=adult", ["'age'", "not a context finding", "allowed"]),
    ("lineage=CML & recent_vincristine=no", ["'CML'", "not a level of lineage", "allowed", "T-ALL"]),
])
def test_a_bad_interaction_key_names_file_entry_and_what_is_allowed(tmp_path, key, expect):
    d = _with_interactions(tmp_path, "vincristine", {key: INTERACTION})
    with pytest.raises(E.EvidenceError) as exc:
        E.load(d)
    msg = str(exc.value)
    for word in ["rates.yaml", "rates.vincristine.interactions", *expect]:
        assert word in msg, (word, msg)


def test_the_same_strata_twice_are_refused(tmp_path):
    d = _with_interactions(tmp_path, "vincristine", {"lineage=AML & recent_vincristine=no": INTERACTION,
                                                      "recent_vincristine=no & lineage=AML": INTERACTION})
    with pytest.raises(E.EvidenceError, match="the same strata as interactions.lineage=AML & recent_vincristine=no"):
        E.load(d)


def test_an_interaction_needs_its_source_and_one_family(tmp_path):
    unsourced = {"lognormal": {"median": 0.05, "factor90": 3}}
    with pytest.raises(E.EvidenceError, match="reasoning"):
        E.load(_with_interactions(tmp_path, "vincristine", {"lineage=AML & recent_vincristine=no": unsourced}))
    both = {**INTERACTION, "value": 0.5}
    with pytest.raises(E.EvidenceError, match="exactly one of"):
        E.load(_with_interactions(tmp_path / "b", "vincristine", {"lineage=AML & recent_vincristine=no": both}))


def test_an_interaction_multiplies_exactly_the_strata_with_all_its_levels(tmp_path):
    """Analytic: with the interaction's draw set to x, the cause's log rate moves by log x in the strata of AML
    without a recent dose and nowhere else; its name is in the context's order whatever the key's."""
    ev = E.load(_with_interactions(tmp_path, "vincristine", {"recent_vincristine=no & lineage=AML": INTERACTION}))
    name = "vincristine: lineage=AML & recent_vincristine=no"
    (factor,) = [f for f in ev.rates.factors if "&" in f.name]
    assert factor.name == name
    st = ev.structure
    r = R.arrays(ev.rates, ev.rates.causes, ev.rates.causes, ())
    j = r.lognormal_names.index(name)
    params = R.sample_prior(r, 3, np.random.default_rng(1))
    bumped = {**params, "rate_lognormal": params["rate_lognormal"].copy()}
    bumped["rate_lognormal"][:, j] *= 7.0
    c = ev.rates.causes.index("vincristine")
    diff = LK.log_rates(LK.NUMPY, bumped, r)[:, c] - LK.log_rates(LK.NUMPY, params, r)[:, c]
    lin, vinca = st.context.index("lineage"), st.context.index("recent_vincristine")
    inside = np.array([s[lin] == "AML" and s[vinca] == "no" for s in st.strata])
    assert inside.sum() == st.n_strata // (len(st.context_levels["lineage"]) * 2)
    np.testing.assert_allclose(diff[:, inside], np.log(7.0), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(diff[:, ~inside], 0.0)
    other = [k for k in range(len(ev.rates.causes)) if k != c]
    np.testing.assert_array_equal(LK.log_rates(LK.NUMPY, bumped, r)[:, other], LK.log_rates(LK.NUMPY, params, r)[:, other])


def test_every_rate_factor_name_finds_its_entry(evidence):
    """The one reader of factor names finds every free and fixed factor of palsy's rates.yaml, an interaction
    included, and its levels are the stratum mask's."""
    doc = evidence.rates.doc["rates"]
    for f in evidence.rates.factors:
        entry, block = R.factor_entry(doc, f.name)
        assert entry and isinstance(entry, dict) and any(k in entry for k in ("lognormal", "beta", "value")), f.name
        cause, _, levels = R.factor_levels(f.name)
        assert cause == f.cause and block is doc[cause]
        np.testing.assert_array_equal(f.strata, evidence.structure.stratum_mask(levels), err_msg=f.name)
    assert any(len(R.factor_levels(f.name)[2]) > 1 for f in evidence.rates.factors)
    assert R.factor_entry(doc, "vincristine: lineage=AML & remission=not_in_remission") == ({}, doc["vincristine"])


def test_the_decomposition_names_an_interaction_only_for_a_patient_who_can_be_in_it():
    name = "vincristine: lineage=AML & recent_vincristine=no"
    assert RO._applies(name, F.parse_patient({"lineage": "AML", "recent_vincristine": "no"}))
    assert RO._applies(name, F.parse_patient({}))  # unknown: marginalised over both
    assert not RO._applies(name, F.parse_patient({"lineage": "T-ALL"}))
    assert not RO._applies(name, F.parse_patient({"lineage": "AML", "recent_vincristine": "yes"}))
    assert RO.rate_factor_is_judgment(yaml.safe_load((REPO / "priors" / "rates.yaml").read_text())["rates"], name)


AML_NO_VINCA = {"lineage": "AML", "remission": "remission_on_treatment", "age_group": "adult",
                "recent_vincristine": "no", "onset": "progressive", "laterality": "bilateral",
                "other_cranial_nerves": "one_or_more", "peripheral_nerves": "one_or_more", "vesicles": "absent",
                "otoscopy": "normal", "csf_profile": "normal", "mri": "normal",
                "csf": ["cytology=negative,flow=negative"]}


def test_vincristine_does_not_lead_an_aml_differential_without_a_dose(draws_subtype):
    """s14's clinician review: an adult AML patient on treatment with no vinca dose and a progressive bilateral palsy
    with limb areflexia read 'leading: vincristine neuropathy 40%'. AML regimens hold no vinca: now GBS and
    infiltration lead, and with a recorded dose vincristine still weighs (the interaction is of 'no' only)."""
    from palsy.model import answer as A

    def cause_means(raw):
        d = A.answer(F.parse_patient(raw), draws_subtype, shapley=False, next_tests=False, rests_on=False).to_dict()
        return {c["cause"]: c["probability"]["mean"] for c in d["causes"]}, d["leading_cause"]

    no_dose, lead = cause_means(AML_NO_VINCA)
    # it was 40.5% and leading (mean); the mean keeps the wide prior's upper tail (three judged factors multiply)
    assert lead != "vincristine" and no_dose["vincristine"] < min(0.15, no_dose["gbs"], no_dose["infiltration"]), no_dose
    with_dose, _ = cause_means({**AML_NO_VINCA, "recent_vincristine": "yes"})
    def odds(p: float) -> float:
        return p / (1 - p)

    assert odds(with_dose["vincristine"]) > 10 * odds(no_dose["vincristine"]), (with_dose, no_dose)
