"""The subtype variant: anchored forms, dependent repeat LPs, and the MRI shift after a negative LP."""

import dataclasses

import numpy as np
import pytest

from palsy.model import answer as A
from palsy.model import findings as F
from palsy.model import schema as SC
from palsy.model import structure as ST

SCHEMA = SC.default()
STRUCT = ST.of(SCHEMA)
DETECTABLE = STRUCT.lp_node["detectable"]
FIRST, SECOND = SCHEMA.lp.methods
#: the laboratory's nodes (shared by every component): what each method sees of present cells, artefacts
LAB = {STRUCT.lp_node[f"detects:{SECOND}"]: 0.95, STRUCT.lp_node[f"detects:{FIRST}|{SECOND}"]: 0.95,
       STRUCT.lp_node[f"artefact:{FIRST}"]: 0.0, STRUCT.lp_node[f"artefact:{SECOND}"]: 0.0}
BEYOND = STRUCT.find_node("mri", ("multiple_nerve_or_leptomeningeal", "mass"), SCHEMA.levels["mri"])
MASS = STRUCT.find_node("mri", ("mass",), ("multiple_nerve_or_leptomeningeal", "mass"))
TWO = ("infiltration", "bell")  # version 1's comparison: one alternative, so the arguments below are exact


def _patient(data: dict, draws) -> F.Patient:
    return F.parse_patient(data, schema=draws.schema)


def test_forms_are_anchored(draws_subtype):
    comps = draws_subtype.components
    th = draws_subtype.params["theta"]
    lepto, peri = comps.index("leptomeningeal"), comps.index("perineural")
    # leptomeningeal disease puts detectable cells in the CSF far more often than perineural disease
    assert (th[:, lepto, DETECTABLE] > th[:, peri, DETECTABLE]).mean() > 0.95
    sarcoma = comps.index("myeloid_sarcoma")
    assert th[:, sarcoma, MASS].mean() > th[:, lepto, MASS].mean()


def test_fit_passes_the_bars(posterior_subtype):
    d = posterior_subtype.diagnostics
    assert d["r_hat_max"] <= 1.01 and d["ess_bulk_min"] >= 1000 and d["divergences"] == 0


@pytest.mark.parametrize("method", SCHEMA.lp.methods)
def test_second_negative_lp_is_worth_less_than_the_first(draws_subtype, draws_independent, method):
    p = _patient({"lineage": "T-ALL", "csf": [{method: "negative"}] * 3}, draws_subtype)
    a = A.answer(p, draws_subtype, causes=TWO, shapley=False)
    lps = a.sequential[-3:]
    # per draw (Cauchy-Schwarz over the forms): each further negative is worth no more
    assert np.all(lps[1] >= lps[0] - 1e-12) and np.all(lps[2] >= lps[1] - 1e-12)
    assert np.median(lps[1] - lps[0]) > 0.01
    # the independent variant multiplies the same factor each time (the naive squaring) when the blood
    # film is known (with it unknown, each result also updates whether blasts circulate: model/game.py)
    p = _patient({"lineage": "T-ALL", "circulating_blasts": "absent", "csf": [{method: "negative"}] * 3}, draws_independent)
    b = A.answer(p, draws_independent, causes=TWO, shapley=False)
    assert np.allclose(b.sequential[-1], b.sequential[-2]) and np.allclose(b.sequential[-2], b.sequential[-3])


def _synthetic(draws, theta_by_comp: dict[str, dict[int, float]], omega: list[float]):
    """The subtype draws with chosen node probabilities and form weights (all draws alike)."""
    th = draws.params["theta_new"].copy()
    for comp, nodes in theta_by_comp.items():
        ks = [k for k, c in enumerate(draws.component_causes) if c != "infiltration"] if comp == "mimics" \
            else [draws.components.index(comp)]
        for node, value in nodes.items():
            th[:, ks, node] = value
    th[:] = th[:1]  # every draw the first's (the shared and other nodes too)
    om = np.broadcast_to(np.array(omega), draws.params["omega"].shape).copy()
    return dataclasses.replace(draws, params={**draws.params, "theta": th, "theta_new": th, "omega": om})


def test_negative_lp_shifts_to_perineural_and_changes_mri_worth(draws_subtype):
    """Synthetic parameters: leptomeningeal disease puts detectable cells in the CSF and rarely shows
    nerves beyond the facial one on MRI; perineural disease rarely does the first and often the second;
    the laboratory reads present cells by either method (no artefact). After a negative LP the posterior
    leans to the perineural form, so an MRI beyond the facial nerve is worth more; after a positive one,
    less."""
    dr = _synthetic(draws_subtype, {
        "leptomeningeal": {DETECTABLE: 0.9, BEYOND: 0.2, MASS: 0.1, **LAB},
        "perineural": {DETECTABLE: 0.1, BEYOND: 0.8, MASS: 0.1, **LAB},
        "myeloid_sarcoma": {DETECTABLE: 0.5, BEYOND: 0.5, MASS: 0.1, **LAB},
        "mimics": {BEYOND: 0.02, MASS: 0.1, **LAB},
    }, [0.45, 0.45, 0.10])
    first = SCHEMA.lp.methods[0]
    mri = {"lineage": "T-ALL", "remission": "remission_on_treatment", "mri": "multiple_nerve_or_leptomeningeal"}
    alone = A.answer(_patient(mri, dr), dr, leave_out=False, shapley=False)
    after_neg = A.answer(_patient({**mri, "csf": [{first: "negative"}]}, dr), dr, leave_out=False, shapley=False)
    after_pos = A.answer(_patient({**mri, "csf": [{first: "positive"}]}, dr), dr, leave_out=False, shapley=False)
    # the MRI is the last player in clinical order (after the LP)
    assert [p.finding for p in after_neg.players][-1] == "mri"
    lr_alone, lr_neg, lr_pos = alone.sequential[-1], after_neg.sequential[-1], after_pos.sequential[-1]
    # all draws alike in theta and omega; the rate block still varies, but within infiltration the forms'
    # weights given the context are the same on every draw here, so the MRI's worth is too
    assert np.allclose(lr_alone, lr_alone[0], atol=0.05)
    assert np.median(lr_neg) > np.median(lr_alone) + 0.3 and np.median(lr_pos) < np.median(lr_alone) - 0.3
    # and the reverse anchoring reverses the direction
    rev = _synthetic(dr, {"leptomeningeal": {BEYOND: 0.8}, "perineural": {BEYOND: 0.2}}, [0.45, 0.45, 0.10])
    a = A.answer(_patient({**mri, "csf": [{first: "negative"}]}, rev), rev, leave_out=False, shapley=False).sequential[-1]
    b = A.answer(_patient(mri, rev), rev, leave_out=False, shapley=False).sequential[-1]
    assert np.all(a < b)


def test_independent_variant_has_no_such_shift(draws_independent):
    mri = {"mri": "multiple_nerve_or_leptomeningeal"}
    first = SCHEMA.lp.methods[0]
    a = A.answer(_patient(mri, draws_independent), draws_independent, leave_out=False, causes=TWO,
                 shapley=False).sequential[-1]
    b = A.answer(_patient({**mri, "csf": [{first: "negative"}]}, draws_independent), draws_independent,
                 leave_out=False, causes=TWO, shapley=False).sequential[-1]
    assert np.allclose(a, b)


def test_cli_subtype_variant(palsy, posterior_subtype):
    import json

    d = json.loads(palsy("posterior", "--variant", "subtype", "--csf", "negative:flow", "--csf", "negative:flow",
                         "--causes", "infiltration,bell", "--json", check=True).stdout)
    assert d["model"]["variant"] == "subtype"
    c = [x["log_lr"]["median"] for x in d["contributions"]]
    assert c[1] > c[0]
