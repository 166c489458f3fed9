"""Evidence synthesis (DESIGN §3): random effects with answers from the new-setting predictive, the
case-selection model, cases that no longer inform CSF sensitivity, and the clinical orderings on
every draw the answers use."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import answer as A
from palsy.model import design as D
from palsy.model import findings as F
from palsy.model import fit
from palsy.model import structure as S

CYTO = S.find_node("csf_cytology", ("positive",), F.CSF_RESULTS)
FLOW = S.find_node("csf_flow", ("positive",), F.CSF_RESULTS)
BILATERAL = S.find_node("laterality", ("bilateral",), S.ITEMS["laterality"])


@pytest.fixture(params=["independent", "subtype"], scope="module")
def draws(request):
    return request.getfixturevalue(f"draws_{request.param}")


def test_pooled_quantities_get_random_effects(evidence):
    d = D.build(evidence, evidence.variant("subtype"))
    assert any("csf_cytology" in g for g in d.re_groups)  # the four cytology series disagree (I2 about 0.84)
    assert d.re_member.sum(axis=1).max() == 1  # each study its own effect
    plain = D.build(evidence, evidence.variant("subtype"), synthesis=False)
    assert plain.re_member.shape[1] == 0 and not plain.sel_mask.any() and not plain.synthesis


def test_answers_use_the_new_setting_predictive(draws_subtype):
    p = draws_subtype.params
    lepto = draws_subtype.components.index("leptomeningeal")
    centre, new = p["theta"][:, lepto, CYTO], p["theta_new"][:, lepto, CYTO]
    wide = lambda x: np.subtract(*np.quantile(x, [0.95, 0.05]))  # noqa: E731
    assert wide(new) > 1.5 * wide(centre)  # a new setting is less certain than the pooled centre
    assert p["tau"].mean() > 0.1
    t = A.Tables(draws_subtype)
    idx = S.LEVEL_INDEX[("csf_cytology", "positive")]
    assert np.allclose(np.exp(t.level_lp[:, lepto, idx]), new)


def test_cases_do_not_inform_csf_sensitivity(evidence):
    d = D.build(evidence, evidence.variant("subtype"))
    csf_levels = [S.LEVEL_INDEX[(item, r)] for item in ("csf_cytology", "csf_flow") for r in F.CSF_RESULTS]
    assert d.obs_mask[:, csf_levels].sum() == 0


def test_selection_inflates_striking_features_in_cases_only(draws_subtype, evidence):
    from palsy.model import likelihood as LK

    d = D.build(evidence, evidence.variant("subtype"))
    p = draws_subtype.params
    assert np.mean(p["gamma"] > 0) > 0.9  # published cases over-represent striking features
    th_case = LK.case_theta(LK.NUMPY, p, d)
    up = p["gamma"] > 0
    assert np.all(th_case[up][:, :, BILATERAL] > p["theta"][up][:, :, BILATERAL])
    assert np.allclose(th_case[:, :, CYTO], p["theta"][:, :, CYTO])  # not a striking feature


@pytest.mark.parametrize("variant", ["independent", "subtype"])
def test_orderings_hold_on_every_draw(variant, request):
    dr = request.getfixturevalue(f"draws_{variant}")
    assert dr.meta["ordering_rejected"] >= 0  # draws whose centres broke it were dropped (exact conditioning)
    th = dr.params["theta_new"]
    inf = [k for k, c in enumerate(dr.component_causes) if c == "infiltration"]
    other = [k for k in range(th.shape[1]) if k not in inf]
    for node in (CYTO, FLOW):
        assert np.all(th[:, inf, node].min(axis=1) > th[:, other, node].max(axis=1))


_level = st.sampled_from
PATIENTS = st.fixed_dictionaries({}, optional={
    **{name: _level(F.LEVELS[name] + ("unknown",)) for name in F.LEVELS},
    "csf": st.lists(st.builds(lambda r, m: f"{r}:{m}", _level(F.CSF_RESULTS), _level(F.CSF_METHODS)), max_size=2),
})


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PATIENTS, st.sampled_from(F.CSF_METHODS))
def test_a_positive_lp_never_lowers_and_a_negative_never_raises(draws, data, method):
    """On every draw the answers use, against the same patient otherwise (DESIGN §3, §9).

    The LP added is a further LP: when the CSF profile is known and no LP is given, a new LP would be
    the one the profile belongs to, and its result then also changes how the profile reads (a normal
    profile with a positive LP is unlike infiltration): that joint reading is not this property."""
    base = F.parse_patient(data)
    if base.level("csf_profile") is not None and not base.csf:
        base = base.replace(csf=(F.LP("negative", "cytology"),))
    p0 = A.answer(base, draws, leave_out=False).probability_draws
    pos = A.answer(base.replace(csf=base.csf + (F.LP("positive", method),)), draws, leave_out=False).probability_draws
    neg = A.answer(base.replace(csf=base.csf + (F.LP("negative", method),)), draws, leave_out=False).probability_draws
    assert np.all(pos >= p0 - 1e-12) and np.all(neg <= p0 + 1e-12)


def test_predictive_theta_redraws_broken_draws(draws_independent, evidence):
    d = D.build(evidence, evidence.variant("independent"))
    params = dict(draws_independent.params)
    new, bad = fit.predictive_theta(params, d, seed=1)
    assert bad == 0 and np.all(fit.ordering_holds(new, d))
