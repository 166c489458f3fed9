"""Evidence synthesis (docs/design.md §3): random effects with answers from the new-setting predictive, the
case-selection model, cases that do not inform the CSF model, and the clinical orderings of the LP: by
construction for every result read before its profile, measured (not enforced) for the first LP's profile."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import answer as A
from palsy.model import design as D
from palsy.model import findings as F
from palsy.model import fit
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import schema as SC

SCHEMA = SC.default()


@pytest.fixture(params=["independent", "subtype"], scope="module")
def draws(request):
    return request.getfixturevalue(f"draws_{request.param}")


def _node(st_, item: str, level: str) -> int:
    return st_.find_node(item, (level,), st_.items[item])


def test_pooled_quantities_get_random_effects(evidence):
    d = D.build(evidence, evidence.variant("subtype"))
    # the four cytology series of leptomeningeal disease disagree (I2 about 0.84): a pooled LP quantity
    assert any("csf: cytology_positive" in g for g in d.re_groups)
    assert d.re_member.sum(axis=1).max() == 1  # each study its own effect
    assert d.re_free_mask.sum() >= len(d.re_groups) - 1  # every pooled quantity varies a free parameter
    plain = D.build(evidence, evidence.variant("subtype"), synthesis=False)
    assert plain.re_member.shape[1] == 0 and not plain.sel_mask.any() and not plain.synthesis
    assert not plain.re_free_mask.any()


def test_answers_use_the_new_setting_predictive(draws_subtype, evidence):
    d = D.build(evidence, evidence.variant("subtype"))
    p = draws_subtype.params
    i = d.free_names.index("leptomeningeal | csf: detectable")
    assert d.re_free_mask[i] == 1
    lepto, node = draws_subtype.components.index("leptomeningeal"), d.structure.lp_node["detectable"]
    centre, new = p["theta"][:, lepto, node], p["theta_new"][:, lepto, node]
    wide = lambda x: np.subtract(*np.quantile(x, [0.95, 0.05]))  # noqa: E731
    assert wide(new) > 1.5 * wide(centre)  # a new setting is less certain than the pooled centre
    assert p["tau"].mean() > 0.1
    # a free parameter no pooled quantity varies is its centre in the answers
    j = d.free_names.index("bell | laterality: bilateral")
    node_j = d.structure.find_node("laterality", ("bilateral",), d.structure.items["laterality"])
    bell = draws_subtype.components.index("bell")
    assert d.re_free_mask[j] == 0 and np.array_equal(p["theta_new"][:, bell, node_j], p["theta"][:, bell, node_j])
    t = A.Tables(draws_subtype)
    assert np.array_equal(t.theta, p["theta_new"])
    # the answers' shared nodes stay shared in the new setting (one value for every component)
    shared = [k for k, n in enumerate(d.structure.nodes) if n.sharing == "shared"]
    assert np.all(p["theta_new"][:, :, shared] == p["theta_new"][:, :1, shared])


def test_cases_do_not_inform_the_csf_model(evidence, draws_independent):
    """The LP that proved a case is left out, so only negative LPs would remain: a case's likelihood does
    not depend on the CSF model's nodes at all (only its profile, given its first LP's class, enters)."""
    d = D.build(evidence, evidence.variant("subtype"))
    st_ = d.structure
    lp_levels = [j for j, (item, _) in enumerate(st_.level_keys) if item not in st_.items]
    assert not lp_levels and d.obs_mask.shape[1] == st_.n_levels  # every observation is a tree item's
    di = D.build(evidence, evidence.variant("independent"))
    p = {k: v[:20].copy() for k, v in draws_independent.params.items()}
    base = LK.case_loglik(LK.NUMPY, p, di)
    lp_free = [i for i, n in enumerate(di.free_names) if " csf: " in n]
    p["theta_free"][:, lp_free] = 0.5 * p["theta_free"][:, lp_free]
    p["theta"] = di.theta(p["theta_free"])
    np.testing.assert_array_equal(LK.case_loglik(LK.NUMPY, p, di), base)


def test_selection_inflates_striking_features_in_cases_only(draws_subtype, evidence):
    d = D.build(evidence, evidence.variant("subtype"))
    st_ = d.structure
    p = draws_subtype.params
    bilateral, vesicles = _node(st_, "laterality", "bilateral"), _node(st_, "vesicles", "present")
    assert d.sel_mask[bilateral] == 1 and d.sel_mask[vesicles] == 0
    assert np.mean(p["gamma"] > 0) > 0.9  # published cases over-represent striking features
    th_case = LK.case_theta(LK.NUMPY, p, d)
    up = p["gamma"] > 0
    assert np.all(th_case[up][:, :, bilateral] > p["theta"][up][:, :, bilateral])
    assert np.allclose(th_case[:, :, vesicles], p["theta"][:, :, vesicles])  # not a striking feature


@pytest.mark.parametrize("variant", ["independent", "subtype"])
def test_lp_orderings_on_every_draw(variant, request, evidence):
    """By construction (model/lp.py): under every infiltration component the sample is at least as
    likely to hold detectable cells as under any other, so each method set's positive class is at least
    as likely, on every draw the answers use, with or without contamination. The first LP's ordering
    with its profile read first is measured: the fit's metadata holds its share, nothing is dropped."""
    dr = request.getfixturevalue(f"draws_{variant}")
    d = D.build(evidence, evidence.variant(variant))
    assert dr.meta["dropped_draws"] == 0
    share = dr.meta["lp_profile_ordering"]["holds_share"]
    assert share == pytest.approx(fit.lp_profile_ordering(dr.params["theta_new"], d).mean())
    assert 0 <= share <= 1 and dr.meta["lp_profile_ordering"]["draws"] == dr.n
    th = dr.params["theta_new"]
    inf = [k for k, c in enumerate(dr.component_causes) if c == "infiltration"]
    other = [k for k in range(th.shape[1]) if k not in inf]
    ix = d.lp_index
    for kappa in (0.0, 0.3, 1.0):
        pat = LP.patterns(LK.NUMPY, th, ix, kappa)
        for done in [(m,) for m in ix.methods] + [ix.methods]:
            pos = pat @ LP.positive_mask(done, ix.methods)
            assert np.all(pos[:, inf].min(axis=1) >= pos[:, other].max(axis=1) - 1e-12)


_level = st.sampled_from
PATIENTS = st.fixed_dictionaries({}, optional={
    **{name: _level(SCHEMA.levels[name] + ("unknown",)) for name in SCHEMA.categorical},
    "csf": st.lists(st.fixed_dictionaries({}, optional={m: _level(SCHEMA.lp.results) for m in SCHEMA.lp.methods}),
                    max_size=2),
})


BLASTS, _ = SCHEMA.lp.contamination


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PATIENTS, st.sampled_from(SCHEMA.lp.methods), st.sampled_from((None, "no", "yes")),
       st.sampled_from(SCHEMA.levels[BLASTS]))
def test_a_positive_lp_never_lowers_and_a_negative_never_raises(draws, data, method, traumatic, blasts):
    """On every draw the answers use, against the same patient otherwise (docs/design.md §3, §9), whatever
    the tap, with the blood film known.

    With the blood film unknown, earlier results also update whether blasts circulate, differently under
    each cause (model/game.py): the direction is then measured, not guaranteed. The LP added is a further
    LP: when the CSF profile is known and no LP is given, a new LP would be the one the profile belongs
    to, and its result then also changes how the profile reads (measured too: ``lp_profile_ordering``):
    neither joint reading is this property."""
    data = {**data, BLASTS: blasts, "csf": [lp for lp in data.get("csf", ()) if lp]}  # an LP with no result is not one
    base = F.parse_patient({k: v for k, v in data.items() if k != "csf" or v}, schema=draws.schema)
    base = base.replace(csf=tuple(lp for lp in base.csf if lp.results))
    if base.level(SCHEMA.profile) is not None and not base.csf:
        base = base.replace(csf=(F.LP.of(**{SCHEMA.lp.methods[0]: "negative"}),))
    quick = {"leave_out": False, "shapley": False, "next_tests": False, "rests_on": False}
    p0 = A.answer(base, draws, **quick).probability_draws
    pos = A.answer(base.replace(csf=base.csf + (F.LP.of(traumatic, **{method: "positive"}),)), draws,
                   **quick).probability_draws
    neg = A.answer(base.replace(csf=base.csf + (F.LP.of(traumatic, **{method: "negative"}),)), draws,
                   **quick).probability_draws
    assert np.all(pos >= p0 - 1e-12) and np.all(neg <= p0 + 1e-12)


def test_predictive_theta_is_the_centre_but_for_pooled_parameters(draws_independent, evidence):
    d = D.build(evidence, evidence.variant("independent"))
    params = dict(draws_independent.params)
    new = fit.predictive_theta(params, d, seed=1)
    again = fit.predictive_theta(params, d, seed=1)
    assert np.array_equal(new, again) and new.shape == params["theta"].shape  # seeded: reproducible
    from palsy.model.criticism.common import free_of_theta

    moved = np.abs(free_of_theta(new, d) - params["theta_free"]).max(axis=0) > 0
    np.testing.assert_array_equal(moved, d.re_free_mask > 0)
