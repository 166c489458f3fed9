"""The subtype variant: anchored forms, dependent repeat LPs, and the MRI shift after a negative LP."""

import dataclasses

import numpy as np

from palsy.model import answer as A
from palsy.model import findings as F
from palsy.model import structure as S

CYTO = S.find_node("csf_cytology", ("positive",), F.CSF_RESULTS)
FLOW = S.find_node("csf_flow", ("positive",), F.CSF_RESULTS)
BEYOND = S.find_node("mri", ("multiple_nerve_or_leptomeningeal", "mass"), F.LEVELS["mri"])
MASS = S.find_node("mri", ("mass",), ("multiple_nerve_or_leptomeningeal", "mass"))
TWO = ("infiltration", "bell")  # version 1's comparison: one alternative, so the arguments below are exact


def test_forms_are_anchored(draws_subtype):
    comps = draws_subtype.components
    th = draws_subtype.params["theta"]
    lepto, peri = comps.index("leptomeningeal"), comps.index("perineural")
    assert (th[:, lepto, CYTO] > th[:, peri, CYTO]).mean() > 0.95
    sarcoma = comps.index("myeloid_sarcoma")
    mass = S.find_node("mri", ("mass",), ("multiple_nerve_or_leptomeningeal", "mass"))
    assert th[:, sarcoma, mass].mean() > th[:, lepto, mass].mean()


def test_fit_passes_the_bars(posterior_subtype):
    d = posterior_subtype.diagnostics
    assert d["r_hat_max"] <= 1.01 and d["ess_bulk_min"] >= 1000 and d["divergences"] == 0


def test_second_negative_lp_is_worth_less_than_the_first(draws_subtype, draws_independent):
    for method in F.CSF_METHODS:
        p = F.parse_patient({"lineage": "T-ALL", "csf": [f"negative:{method}"] * 3})
        a = A.answer(p, draws_subtype, causes=TWO)
        lps = a.sequential[-3:]
        # per draw (Cauchy-Schwarz over the forms): each further negative is worth no more
        assert np.all(lps[1] >= lps[0] - 1e-12) and np.all(lps[2] >= lps[1] - 1e-12)
        assert np.median(lps[1] - lps[0]) > 0.01
        # the independent variant multiplies the same factor each time (the naive squaring)
        b = A.answer(p, draws_independent, causes=TWO)
        assert np.allclose(b.sequential[-1], b.sequential[-2]) and np.allclose(b.sequential[-2], b.sequential[-3])


def _synthetic(draws, theta_by_comp: dict[str, dict[int, float]], omega: list[float]):
    """The subtype draws with chosen node probabilities and form weights (all draws alike)."""
    th = draws.params["theta"].copy()
    for comp, nodes in theta_by_comp.items():
        ks = [k for k, c in enumerate(draws.component_causes) if c != "infiltration"] if comp == "mimics" \
            else [draws.components.index(comp)]
        for node, value in nodes.items():
            th[:, ks, node] = value
    om = np.broadcast_to(np.array(omega), draws.params["omega"].shape).copy()
    return dataclasses.replace(draws, params={**draws.params, "theta": th, "theta_new": th, "omega": om})


def test_negative_lp_shifts_to_perineural_and_changes_mri_worth(draws_subtype):
    """Synthetic parameters: leptomeningeal disease is CSF-positive and rarely shows nerves beyond
    the facial one on MRI; perineural disease is CSF-negative and often does. After a negative LP
    the posterior leans to the perineural form, so an MRI beyond the facial nerve is worth more."""
    dr = _synthetic(draws_subtype, {
        "leptomeningeal": {CYTO: 0.9, BEYOND: 0.2, MASS: 0.1},
        "perineural": {CYTO: 0.1, BEYOND: 0.8, MASS: 0.1},
        "myeloid_sarcoma": {CYTO: 0.5, BEYOND: 0.5, MASS: 0.1},
        "mimics": {CYTO: 0.01, BEYOND: 0.02, MASS: 0.1},
    }, [0.45, 0.45, 0.10])
    mri = {"mri": "multiple_nerve_or_leptomeningeal"}
    alone = A.answer(F.parse_patient(mri), dr, leave_out=False)
    after_neg = A.answer(F.parse_patient({**mri, "csf": ["negative:cytology"]}), dr, leave_out=False)
    after_pos = A.answer(F.parse_patient({**mri, "csf": ["positive:cytology"]}), dr, leave_out=False)
    lr_alone, lr_neg, lr_pos = alone.sequential[-1], after_neg.sequential[-1], after_pos.sequential[-1]
    assert np.allclose(lr_alone, lr_alone[0])  # all draws alike: the effect is the parameters'
    assert lr_neg[0] > lr_alone[0] + 0.3 and lr_pos[0] < lr_alone[0] - 0.3
    # and the reverse anchoring reverses the direction
    rev = _synthetic(dr, {"leptomeningeal": {BEYOND: 0.8}, "perineural": {BEYOND: 0.2}}, [0.45, 0.45, 0.10])
    a = A.answer(F.parse_patient({**mri, "csf": ["negative:cytology"]}), rev, leave_out=False).sequential[-1]
    b = A.answer(F.parse_patient(mri), rev, leave_out=False).sequential[-1]
    assert np.all(a < b)


def test_independent_variant_has_no_such_shift(draws_independent):
    mri = {"mri": "multiple_nerve_or_leptomeningeal"}
    a = A.answer(F.parse_patient(mri), draws_independent, leave_out=False, causes=TWO).sequential[-1]
    b = A.answer(F.parse_patient({**mri, "csf": ["negative:cytology"]}), draws_independent, leave_out=False,
                 causes=TWO).sequential[-1]
    assert np.allclose(a, b)


def test_cli_subtype_variant(palsy, posterior_subtype):
    import json

    d = json.loads(palsy("posterior", "--variant", "subtype", "--csf", "negative:flow", "--csf", "negative:flow",
                         "--causes", "infiltration,bell", "--json", check=True).stdout)
    assert d["model"]["variant"] == "subtype"
    c = [x["log_lr"]["median"] for x in d["contributions"]]
    assert c[1] > c[0]
