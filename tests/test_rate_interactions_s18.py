"""A statistician's second review of the rate model's interactions (s18, /work/lit/notes/s18/interactions.md).

An interaction multiplies exactly the strata where each of its findings has its level, on top of the factors and
multipliers (products on the rate scale); its levels are each other than the cause's reference (as a multiplier's
are); a malformed key says what is wrong; every rate factor's name reads back through the one reader
(:func:`palsy.model.rates.factor_levels`) as its own cause and levels; the implied-rates table shows each
interaction's rate and share over its strata, and takes a fixed factor out like a free one."""

from __future__ import annotations

import copy
import functools
import shutil

import numpy as np
import pytest
import yaml
from conftest import FIXTURE_EVIDENCE, REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import evidence as E
from palsy.model import likelihood as LK
from palsy.model import rates as R
from palsy.model import rests_on as RO
from palsy.model.criticism import implied as I

INTERACTION = {"lognormal": {"median": 0.05, "factor90": 3}, "kind": "expert_judgment", "reasoning": "a test"}
NAME = "vincristine: lineage=AML & recent_vincristine=no"


def _edited(tmp_path, edit):
    """The fixture evidence with ``edit(rates document)`` applied, as a folder."""
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    doc = yaml.safe_load((d / "rates.yaml").read_text())
    edit(doc)
    (d / "rates.yaml").write_text(yaml.safe_dump(doc))
    return d


def _refused(tmp_path, edit) -> str:
    with pytest.raises(E.EvidenceError) as exc:
        E.load(_edited(tmp_path, edit))
    return str(exc.value)


def _parse(doc, ev, causes=None):
    """``rates.parse`` of a (shape-valid) document: the spec (None when refused) and the problems."""
    problems: list[tuple[str, str, str]] = []
    spec = R.parse(doc, causes or ev.rates.causes, ev.references, lambda *a: problems.append(a), ev.structure)
    return spec, problems


@functools.cache
def _palsy() -> tuple[E.Evidence, dict]:
    """palsy's evidence, and its rates.yaml without its interactions (a document the fuzz adds one to): not
    fixtures, so that hypothesis does not print them with each example."""
    ev = E.load(REPO / "priors")
    doc = copy.deepcopy(ev.rates.doc)
    for block in doc["rates"].values():
        block.pop("interactions", None)
    return ev, doc


# --- 1-2: the strata, and products on the rate scale ---------------------------------------------------------

def test_each_causes_rate_is_the_product_of_what_applies_in_each_stratum(evidence):
    """Every cause's rate in every stratum rebuilt by loops from the YAML (factors x each multiplier of the stratum's
    levels x each interaction all of whose levels are the stratum's) is exp(log_rates), on three prior draws: the
    interaction's strata found by reading its key here, not through the parser's masks."""
    spec, st_ = evidence.rates, evidence.structure
    r = I.rate_arrays(spec)
    p = R.sample_prior(r, 3, np.random.default_rng(7))
    got = LK.log_rates(LK.NUMPY, p, r)
    fixed = {f.name: f.params[0] for f in spec.factors if f.kind == "value"}

    def value(name: str, k: int) -> float:
        if name in fixed:
            return fixed[name]
        if name in r.lognormal_names:
            return float(p["rate_lognormal"][k, r.lognormal_names.index(name)])
        return float(p["rate_beta"][k, r.beta_names.index(name)])

    n_inside = 0
    for c, cause in enumerate(spec.causes):
        block = spec.doc["rates"][cause]
        for s, levels in enumerate(st_.strata):
            at = dict(zip(st_.context, levels, strict=True))
            for k in range(3):
                rate = np.prod([value(f"{cause}: {n}", k) for n in block["factors"]])
                for finding, by_level in (block.get("multipliers") or {}).items():
                    for level in by_level:
                        level = {True: "yes", False: "no"}.get(level, level)
                        rate *= value(f"{cause}: {finding}={level}", k) if at[finding] == level else 1.0
                for key in block.get("interactions") or {}:
                    parts = [x.split("=") for x in key.split(" & ")]
                    if all(at[f] == lv for f, lv in parts):
                        rate *= value(f"{cause}: {' & '.join(f'{f}={lv}' for f, lv in parts)}", k)
                        n_inside += k == 0
                assert got[k, c, s] == pytest.approx(np.log(rate), abs=1e-12), (cause, levels)
    assert n_inside == 24  # AML without a recent dose: 192 strata / 4 lineages / 2


def test_the_prior_sampler_draws_an_interaction_from_its_stated_prior(evidence):
    r = I.rate_arrays(evidence.rates)
    x = R.sample_prior(r, 40_000, np.random.default_rng(3))["rate_lognormal"][:, r.lognormal_names.index(NAME)]
    lo, med, hi = np.quantile(x, [0.05, 0.5, 0.95])  # median 0.05, factor90 3
    assert med == pytest.approx(0.05, rel=0.03)
    assert lo == pytest.approx(0.05 / 3, rel=0.05) and hi == pytest.approx(0.15, rel=0.05)


# --- 3: the reference levels --------------------------------------------------------------------------------

@pytest.mark.parametrize("key, level, finding", [
    ("lineage=B-ALL & recent_vincristine=yes", "'yes'", "recent_vincristine"),  # the reference stratum itself
    ("lineage=AML & recent_vincristine=yes", "'yes'", "recent_vincristine"),  # the cause's own reference
    ("lineage=AML & age_group=child", "'child'", "age_group"),  # the file's reference
], ids=["all-reference", "cause-reference", "file-reference"])
def test_an_interaction_of_a_reference_level_is_refused(tmp_path, key, level, finding):
    """As a multiplier at the reference level is: an interaction there would rescale the cause's factors (the rate at
    the reference levels) or change what the other finding's multiplier means, and is aliased with it."""
    msg = _refused(tmp_path, lambda d: d["rates"]["vincristine"].update(interactions={key: INTERACTION}))
    for word in ["rates.yaml", f"rates.vincristine.interactions.{key}", level,
                 f"reference level of {finding} for vincristine", "allowed"]:
        assert word in msg, (word, msg)


# --- 4: what is wrong with a malformed key -------------------------------------------------------------------

@pytest.mark.parametrize("key, expect", [
    ("lineage=AML & lineage=T-ALL", ["'lineage' is given twice"]),
    ("", ["an empty part"]),
    ("lineage=AML & & recent_vincristine=no", ["an empty part"]),
    ("lineage=AML & recent_vincristine=no &", ["an empty part"]),
    ("lineage AML & recent_vincristine=no", ["'lineage AML' has no '='"]),
    ("=AML & recent_vincristine=no", ["'=AML' names no finding"]),
    ("lineage= & recent_vincristine=no", ["'lineage=' names no level"]),
    ("lineage=AML", ["one level alone is a multiplier", "multipliers.lineage.AML"]),
], ids=["twice", "empty", "empty-part", "trailing", "no-eq", "no-finding", "no-level", "one"])
def test_a_malformed_key_says_what_is_wrong(tmp_path, key, expect):
    msg = _refused(tmp_path, lambda d: d["rates"]["vincristine"].update(interactions={key: INTERACTION}))
    for word in ["rates.yaml", "rates.vincristine.interactions", *expect]:
        assert word in msg, (word, msg)
    if len(expect) == 1:
        assert "give 'finding=level & finding=level'" in msg, msg  # and what is allowed


# --- 5: every factor's name reads back through the one reader -------------------------------------------------

@pytest.mark.parametrize("factor", ["season=winter", "age_group=adult", "lineage=AML & recent_vincristine=no"],
                         ids=["eq", "a-multipliers-name", "an-interactions-name"])
def test_a_factor_whose_name_would_read_as_levels_is_refused(tmp_path, factor):
    """A factor named like a level ('age_group=adult') was read by ``factor_levels`` as a multiplier: the provenance
    found another entry (a cited factor counted as judgment) and the draws had two columns of one name."""
    cited = {"lognormal": {"median": 1.2, "factor90": 1.5}, "kind": "cited", "ref": "fixture2020"}
    msg = _refused(tmp_path, lambda d: d["rates"]["bell"]["factors"].update({factor: cited}))
    for word in ["rates.yaml", f"rates.bell.factors.{factor}", "reads back as", "'='"]:
        assert word in msg, (word, msg)


def test_a_cause_whose_name_holds_the_separator_is_refused(fixture_evidence):
    ev = fixture_evidence
    doc = copy.deepcopy(ev.rates.doc)
    doc["rates"]["bell: idiopathic"] = doc["rates"].pop("bell")
    causes = tuple("bell: idiopathic" if c == "bell" else c for c in ev.rates.causes)
    spec, problems = _parse(doc, ev, causes)
    assert spec is None
    assert any(e.startswith("rates.bell: idiopathic.factors") and "reads back as" in m and "': '" in m
               for e, _, m in problems), problems


def test_every_name_of_palsys_rates_reads_back(evidence):
    """Each factor of palsy's rates.yaml: ``factor_levels`` gives its cause and the levels of its strata, once."""
    names = [f.name for f in evidence.rates.factors]
    assert len(names) == len(set(names))
    for f in evidence.rates.factors:
        cause, _, levels = R.factor_levels(f.name)
        assert cause == f.cause
        np.testing.assert_array_equal(evidence.structure.stratum_mask(levels), f.strata, err_msg=f.name)


def _key_strategy():
    """Keys of one interaction of vincristine: mostly well-formed parts (a context finding and one of its levels),
    some junk (unknown findings and levels, empty or doubled '='), joined by '&' with any spacing."""
    s = E.load(FIXTURE_EVIDENCE).structure
    good = st.sampled_from(s.context).flatmap(lambda f: st.tuples(
        st.sampled_from(["", " "]), st.just(f), st.sampled_from(["=", " = "]), st.sampled_from(s.context_levels[f])))
    junk = st.tuples(st.sampled_from([*s.context, "onset", "Lineage", ""]), st.sampled_from(["=", "", "=="]),
                     st.sampled_from(["AML", "in_remission", "ALL", "", "x", "yes"]), st.just(""))
    part = st.one_of(good, good, good, junk).map(lambda t: "".join(t))
    return st.lists(part, max_size=4).flatmap(
        lambda ps: st.sampled_from([" & ", "&", "  &  ", " && "]).map(lambda sep: sep.join(ps)))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=_key_strategy())
def test_fuzz_an_accepted_key_multiplies_its_strata_and_a_refused_one_is_named(key):
    """Any key: read here independently (parts split at '&', each 'finding=level' of a context finding, each
    finding once, two or more, none at vincristine's reference); accepted exactly when that reading is, with the
    strata of those levels and a name that reads back to its entry; refused under its entry otherwise."""
    evidence, without_interactions = _palsy()
    st_ = evidence.structure
    ref = {**evidence.rates.doc["reference"], "recent_vincristine": "yes"}
    doc = copy.deepcopy(without_interactions)
    doc["rates"]["vincristine"]["interactions"] = {key: INTERACTION}
    spec, problems = _parse(doc, evidence)
    want: dict[str, str] | None = {}
    for part in key.split("&"):
        finding, eq, level = (x.strip() for x in part.partition("="))
        if (not eq or finding not in st_.context or level not in st_.context_levels[finding] or finding in want
                or level == ref[finding]):
            want = None
            break
        want[finding] = level
    if want is not None and len(want) >= 2:
        assert spec is not None, (key, problems)
        (f,) = [f for f in spec.factors if len(R.factor_levels(f.name)[2]) > 1]
        mask = [all(lv[st_.context.index(x)] == y for x, y in want.items()) for lv in st_.strata]
        np.testing.assert_array_equal(f.strata, np.array(mask, float))
        assert R.factor_levels(f.name)[2] == want
        assert R.factor_entry(doc["rates"], f.name)[0] is doc["rates"]["vincristine"]["interactions"][key]
    else:
        assert spec is None and problems, key
        assert all(e.startswith("rates.vincristine.interactions.") for e, _, _ in problems), problems


# --- 4 (provenance): an interaction's kind is read like any factor's ------------------------------------------

@pytest.mark.parametrize("kind, judgment", [("expert_judgment", True), ("cited", False)], ids=["judged", "cited"])
def test_an_interactions_provenance_is_its_own_kind(evidence, kind, judgment):
    doc = copy.deepcopy(evidence.rates.doc["rates"])
    doc["vincristine"]["interactions"]["lineage=AML & recent_vincristine=no"] = {**INTERACTION, "kind": kind}
    assert RO.rate_factor_is_judgment(doc, NAME) is judgment


# --- 6-7: the implied table ---------------------------------------------------------------------------------

def test_a_fixed_factor_is_taken_out_like_a_free_one(tmp_path):
    """exclude_factors naming a fixed factor: the file loads, so the implied table computes (it raised)."""
    def edit(d):
        d["rates"]["infiltration"]["factors"]["p_facial"] = {"value": 0.1, "reasoning": "fixed"}

    ev = E.load(_edited(tmp_path, edit))
    spec = ev.rates
    r = I.rate_arrays(spec)
    p = R.sample_prior(r, 50, np.random.default_rng(2))
    out = I.cumulative(p, spec, r, "infiltration", ["p_facial"])
    # by hand: the rate without p_facial is the rate with it divided by 0.1
    log_pi = LK.log_shares(LK.NUMPY, p, r)
    lam = np.exp(LK.log_rates(LK.NUMPY, p, r)[:, spec.causes.index("infiltration")]) / 0.1
    mean = (np.exp(log_pi) * lam) @ spec.structure.level_indicator("lineage") / p["share_lineage"]
    np.testing.assert_allclose(out, -np.expm1(-spec.window_years * mean), rtol=1e-12)
    assert I.implied(spec, n=200)["cumulative"]


def test_the_implied_table_gives_each_interactions_rate_and_share(evidence):
    """One row per interaction: its cause's rate per patient-year and share of new palsies over the interaction's
    strata (the patient-time of those strata weighting each), by hand from the likelihood's arrays."""
    spec = evidence.rates
    r = I.rate_arrays(spec)
    p = R.sample_prior(r, 3000, np.random.default_rng(11))
    res = I.implied(spec, p)
    (row,) = res["interactions"]
    assert row["factor"] == NAME and row["cause"] == "vincristine"
    assert row["levels"] == {"lineage": "AML", "recent_vincristine": "no"}
    st_ = spec.structure
    inside = np.array([s[0] == "AML" and s[st_.context.index("recent_vincristine")] == "no" for s in st_.strata])
    pi = np.exp(LK.log_shares(LK.NUMPY, p, r))[:, inside]
    lam = np.exp(LK.log_rates(LK.NUMPY, p, r))[:, :, inside]
    c = spec.causes.index("vincristine")
    rate = (pi * lam[:, c]).sum(-1) / pi.sum(-1)
    share = (pi * lam[:, c]).sum(-1) / (pi[:, None] * lam).sum((-1, -2))
    assert row["rate_per_py"]["mean"] == pytest.approx(rate.mean(), rel=1e-9)
    assert row["rate_per_py"]["median"] == pytest.approx(np.median(rate), rel=1e-9)
    assert row["share"]["mean"] == pytest.approx(share.mean(), rel=1e-9)
    assert row["share"]["upper"] == pytest.approx(np.quantile(share, 0.95), rel=1e-9)
    # the reasoning's "about 2 in 10 million patient-years" is the median at the reference ages and remission
    assert 5e-8 < row["rate_per_py"]["median"] < 1e-6
    text = I.format_table(res)
    assert "lineage=AML & recent_vincristine=no" in text and "per patient-year" in text
