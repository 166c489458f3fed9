"""What to do now: the actions of priors/actions.yaml and their triggers (DESIGN §3, §6)."""

from pathlib import Path

import pytest
import yaml

from palsy.model import answer as A
from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import guidance as G
from tests.conftest import REPO

VIGNETTES = Path(__file__).parent / "fixtures" / "vignettes"
CAUSES = ("infiltration", "bell", "zoster", "vincristine", "gbs", "otomastoiditis")

#: Each hallmark vignette: actions that must be recommended and actions that must not.
EXPECTED = {
    "bell_like": ({"eye_protection", "steroid_if_mimics_unlikely", "reassess_48_72h"},
                  {"zoster_isolation", "leukaemia_team_today"}),
    "ramsay_hunt": ({"zoster_aciclovir", "zoster_isolation", "steroid_with_antiviral"}, {"steroid_if_mimics_unlikely"}),
    "gbs": ({"gbs_respiratory_watch"}, {"steroid_if_mimics_unlikely", "steroid_with_antiviral"}),
    "vincristine": ({"vincristine_review"}, {"steroid_if_mimics_unlikely"}),
    "otomastoiditis": ({"ear_infection_neutropenic"}, {"steroid_if_mimics_unlikely", "steroid_with_antiviral"}),
    "infiltration_flow": ({"eye_protection", "marrow_assessment"}, {"steroid_if_mimics_unlikely"}),
}


@pytest.fixture(scope="module")
def actions():
    return G.load(REPO / "priors", CAUSES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_actions_on_hallmark_vignettes(draws_subtype, actions, name):
    doc = yaml.safe_load((VIGNETTES / f"{name}.yaml").read_text())
    a = A.answer(F.parse_patient(doc["patient"]), draws_subtype, decision_settings=D.load(REPO / "priors"),
                 guidance=actions)
    ids = [x["id"] for x in a.actions]
    print(name, ids)
    must, must_not = EXPECTED[name]
    assert must <= set(ids), (name, ids)
    assert not (must_not & set(ids)), (name, ids)
    assert ids[0] == "eye_protection"  # whatever the cause, first


def test_every_action_is_sourced_and_one_line(actions, evidence):
    for a in actions:
        assert a.refs and all(r in evidence.references for r in a.refs), a.id
        assert "\n" not in a.text and len(a.text) <= 120, a.id
        assert "ruled out" not in a.text and "excluded" not in a.text


def test_trigger_grammar():
    p = F.parse_patient({"remission": "remission_on_treatment", "csf": ["negative:cytology"], "vesicles": "present"})
    means = {"zoster": 0.2, "gbs": 0.01}
    holds = lambda cond, action=None: G.holds(cond, p, means, action)  # noqa: E731
    assert holds("always")
    assert holds({"finding": "remission", "in": ["remission_on_treatment", "remission_off_treatment"]})
    assert holds({"finding": "otoscopy", "unknown": True}) and not holds({"finding": "vesicles", "unknown": True})
    assert holds({"finding": "csf", "all_negative": True}) and not holds({"finding": "csf", "count_below": 1})
    assert holds({"cause": "zoster", "above": 0.1}) and holds({"cause": "gbs", "below": 0.05})
    assert not holds({"cause": "bell", "above": 0.0001})  # a cause left out never triggers
    assert holds({"decision": ["test"]}, "test") and not holds({"decision": ["treat"]}, "test")
    assert holds({"all": ["always", {"not": {"cause": "zoster", "below": 0.1}}]})
    assert holds({"any": [{"cause": "gbs", "above": 0.5}, "always"]})


def test_bad_trigger_is_reported(tmp_path):
    (tmp_path / "actions.yaml").write_text(
        "actions:\n  - {id: a, text: t, when: {cause: flu, above: 2}, priority: 1, ref: [x], reasoning: r}\n")
    with pytest.raises(F.InputError) as exc:
        G.load(tmp_path, CAUSES)
    assert "flu" in str(exc.value) and "actions.yaml" in str(exc.value)


@pytest.mark.parametrize("given, shown", [("", "None"), ("id: '   ', ", "'   '"), ("id: 5, ", "5")])
def test_an_action_id_is_text_not_blank(tmp_path, given, shown):
    """An action without an id, or with a blank or numeric one, is refused (it was once taken as '#1')."""
    (tmp_path / "actions.yaml").write_text(
        "actions:\n  - {" + given + "text: t, when: always, priority: 1, ref: [x], reasoning: r}\n")
    with pytest.raises(F.InputError) as exc:
        G.load(tmp_path, CAUSES)
    msg = str(exc.value)
    assert "action #1: id:" in msg and "not blank" in msg and shown in msg, msg
