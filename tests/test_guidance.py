"""What to do now: the actions of priors/actions.yaml and their triggers (docs/design.md §3, §6)."""

from pathlib import Path

import pytest
import yaml

from palsy.model import answer as A
from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import guidance as G
from palsy.model import schema as SC
from tests.conftest import REPO

VIGNETTES = Path(__file__).parent / "fixtures" / "vignettes"
CAUSES = ("infiltration", "bell", "zoster", "vincristine", "gbs", "otomastoiditis")

#: Each hallmark vignette: actions that must be recommended and actions that must not.
EXPECTED = {
    "bell_like": ({"eye_protection", "steroid_if_mimics_unlikely", "reassess_48_72h"},
                  {"zoster_isolation", "leukaemia_team_today"}),
    "ramsay_hunt": ({"zoster_antiviral_oral", "zoster_isolation", "steroid_with_antiviral"},
                    {"steroid_if_mimics_unlikely", "zoster_aciclovir_iv"}),
    "gbs": ({"gbs_respiratory_watch"}, {"steroid_if_mimics_unlikely", "steroid_with_antiviral"}),
    "vincristine": ({"vincristine_review"}, {"steroid_if_mimics_unlikely"}),
    "otomastoiditis": ({"ear_infection_neutropenic"}, {"steroid_if_mimics_unlikely", "steroid_with_antiviral"}),
    "infiltration_flow": ({"eye_protection", "marrow_assessment", "leukaemia_team_today"}, {"steroid_if_mimics_unlikely"}),
}


@pytest.fixture(scope="module")
def actions():
    return G.load(REPO / "priors", CAUSES, SC.default())


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
    assert "eye_protection" in ids and "reassess_48_72h" in ids  # whatever the cause
    priorities = {x.id: x.priority for x in actions}
    assert [priorities[i] for i in ids] == sorted(priorities[i] for i in ids)  # what changes management today first


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
    assert holds({"finding": "csf", "without": "flow"}) and not holds({"finding": "csf", "without": "cytology"})
    assert not holds({"finding": "csf", "any_positive": True})
    dirty = F.parse_patient({"circulating_blasts": "present", "csf": [{"cytology": "positive", "traumatic": "yes"}]})
    clean = F.parse_patient({"circulating_blasts": "absent", "csf": [{"cytology": "positive", "traumatic": "yes"}]})
    assert G.holds({"finding": "csf", "contaminated_positive": True}, dirty, means, None)
    after = {"finding": "csf", "atraumatic_after_positive": True}
    assert not G.holds(after, dirty, means, None)
    for later, repeated in (({"cytology": "negative", "flow": "negative", "traumatic": "no"}, True),
                            ({"cytology": "negative", "traumatic": "yes"}, False), ({"cytology": "negative"}, False)):
        p2 = F.parse_patient({"circulating_blasts": "present", "csf": [{"cytology": "positive", "traumatic": "yes"}, later]})
        assert G.holds(after, p2, means, None) is repeated, later
    before = F.parse_patient({"csf": [{"cytology": "negative", "traumatic": "no"}, {"cytology": "positive"}]})
    assert not G.holds(after, before, means, None)  # an atraumatic LP before the positive one is not its repeat
    assert not G.holds({"finding": "csf", "clean_positive": True}, dirty, means, None)
    assert G.holds({"finding": "csf", "clean_positive": True}, clean, means, None)
    assert holds({"cause": "zoster", "above": 0.1}) and holds({"cause": "gbs", "below": 0.05})
    assert not holds({"cause": "bell", "above": 0.0001})  # a cause left out never triggers
    assert holds({"decision": ["test"]}, "test") and not holds({"decision": ["treat"]}, "test")
    assert holds({"all": ["always", {"not": {"cause": "zoster", "below": 0.1}}]})
    assert holds({"any": [{"cause": "gbs", "above": 0.5}, "always"]})


def test_bad_trigger_is_reported(tmp_path):
    (tmp_path / "actions.yaml").write_text(
        "actions:\n  - {id: a, text: t, when: {cause: flu, above: 2}, priority: 1, ref: [x], reasoning: r}\n")
    with pytest.raises(F.InputError) as exc:
        G.load(tmp_path, CAUSES, SC.default())
    assert "flu" in str(exc.value) and "actions.yaml" in str(exc.value)


@pytest.mark.parametrize("given, shown", [("", "None"), ("id: '   ', ", "'   '"), ("id: 5, ", "5")])
def test_an_action_id_is_text_not_blank(tmp_path, given, shown):
    """An action without an id, or with a blank or numeric one, is refused (it was once taken as '#1')."""
    (tmp_path / "actions.yaml").write_text(
        "actions:\n  - {" + given + "text: t, when: always, priority: 1, ref: [x], reasoning: r}\n")
    with pytest.raises(F.InputError) as exc:
        G.load(tmp_path, CAUSES, SC.default())
    msg = str(exc.value)
    assert "entry '#1': field 'id':" in msg and "not blank" in msg and shown in msg, msg


@pytest.mark.parametrize("sign", [None, "''", '"two\\nlines"'])
def test_an_escalating_action_needs_its_sign_in_one_line(tmp_path, sign):
    """An escalating action says when it applies in a few words (``sign``, which the teaching handout lists with
    the action's words): without it, blank or on two lines, the file is refused naming the action and the field.
    Every escalating action of priors/actions.yaml has one."""
    given = "" if sign is None else f"sign: {sign}, "
    (tmp_path / "actions.yaml").write_text(
        "actions:\n  - {id: call_today, text: t, " + given + "urgency: escalation, when: always, priority: 1, "
        "ref: [x], reasoning: r}\n")
    with pytest.raises(F.InputError) as exc:
        G.load(tmp_path, CAUSES, SC.default())
    msg = str(exc.value)
    assert "actions.yaml" in msg and "call_today" in msg and ("sign" in msg or "one line" in msg), msg
    (tmp_path / "actions.yaml").write_text(
        "actions:\n  - {id: later, text: t, urgency: care, when: always, priority: 1, ref: [x], reasoning: r}\n")
    (later,) = G.load(tmp_path, CAUSES, SC.default())  # no sign is asked of the other actions
    assert later.sign == ""
    shipped = G.load(REPO / "priors", CAUSES, SC.default())
    assert all(a.sign and "\n" not in a.sign for a in shipped if a.urgency == "escalation")


def test_a_progressive_palsy_after_a_negative_work_up_is_not_left_to_bells_palsy(draws_subtype, actions):
    """A clinician's review (December 2026): a progressive palsy with two negative LPs (cytology and flow) and a
    normal MRI read 'leading: Bell's palsy' with nothing that said a progressive palsy is not Bell's course. The
    action names the tests that find nerve infiltration the CSF and MRI miss; not while the MRI or an LP is
    outstanding, not for an acute palsy, not where the red flag (bilateral, another nerve) escalates already."""
    base = {"lineage": "AML", "remission": "remission_on_treatment", "recent_vincristine": "no",
            "vesicles": "absent", "age_group": "child", "onset": "progressive", "mri": "normal",
            "csf": [{"cytology": "negative", "flow": "negative"}] * 2}

    def ids(**change) -> list[str]:
        p = {k: v for k, v in {**base, **change}.items() if v is not None}
        a = A.answer(F.parse_patient(p), draws_subtype, decision_settings=D.load(REPO / "priors"), guidance=actions,
                     shapley=False, rests_on=False)
        return [x["id"] for x in a.actions]

    got = ids()
    assert "progressive_after_negative_workup" in got, got
    assert [x for x in actions if x.id == "progressive_after_negative_workup"][0].urgency == "workup"
    for change in ({"onset": "acute"}, {"mri": None}, {"csf": None}, {"laterality": "bilateral"},
                   {"other_cranial_nerves": "one_or_more"}, {"forehead": "spared"},
                   {"csf": [{"cytology": "negative", "flow": "positive"}]}):
        assert "progressive_after_negative_workup" not in ids(**change), change
    assert "red_flag_today" in ids(laterality="bilateral")


def test_a_normal_mri_keeps_its_caveat_on_the_page(draws_subtype, actions):
    """A clinician's review (December 2026): once a normal MRI was entered, the page lost its only caveat (the MRI
    action's detail, while the MRI was outstanding). The caveat is an action of its own while the MRI reads normal,
    and never for another MRI result or a forehead-sparing palsy."""
    base = {"lineage": "T-ALL", "remission": "remission_on_treatment", "onset": "acute", "laterality": "unilateral",
            "mri": "normal", "csf": [{"cytology": "negative", "flow": "negative"}]}

    def ids(**change) -> list[str]:
        a = A.answer(F.parse_patient({**base, **change}), draws_subtype, decision_settings=D.load(REPO / "priors"),
                     guidance=actions, shapley=False, rests_on=False)
        return [x["id"] for x in a.actions]

    assert "normal_mri_not_excluding" in ids()
    text = next(x.text for x in actions if x.id == "normal_mri_not_excluding")
    assert "does not exclude" in text and "excluded" not in text
    for change in ({"mri": "facial_nerve_enhancement"}, {"mri": "mass"}, {"forehead": "spared"}):
        assert "normal_mri_not_excluding" not in ids(**change), change
