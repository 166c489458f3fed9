import pytest

from palsy.model import findings as F
from palsy.model import schema as SC


def test_valid_patient_and_unknowns():
    p = F.parse_patient({"id": "a", "lineage": "T-ALL", "remission": "unknown", "laterality": None,
                         "csf": [{"result": "negative", "method": "cytology"}, "positive:flow",
                                 {"cytology": "negative", "flow": "positive", "traumatic": "no"},
                                 "cytology=positive,traumatic=yes"]})
    assert p.lineage == "T-ALL" and p.remission is None and p.laterality is None
    assert [lp.code for lp in p.csf] == ["cytology=negative", "flow=positive",
                                         "cytology=negative,flow=positive,traumatic=no",
                                         "cytology=positive,traumatic=yes"]
    assert [lp.positive for lp in p.csf] == [False, True, True, True]
    assert p.csf[2].result("flow") == "positive" and p.csf[0].result("flow") is None
    assert p.csf[3].traumatic == "yes" and p.csf[0].traumatic is None


def test_an_lp_round_trips_through_its_dict_and_code():
    p = F.parse_patient({"csf": [{"cytology": "positive", "flow": "negative", "traumatic": "yes"}]})
    again = F.parse_patient(p.to_dict())
    assert again.csf == p.csf
    assert F.parse_patient({"csf": [p.csf[0].code]}).csf == p.csf


def test_at_diagnosis_is_answered_as_not_in_remission():
    p = F.parse_patient({"remission": "at_diagnosis"})
    assert p.at_diagnosis and p.level("remission") == "not_in_remission"


@pytest.mark.parametrize("data, field, value", [
    ({"lineage": "T-cell"}, "lineage", "T-cell"),
    ({"mri": "enhancing"}, "mri", "enhancing"),
    ({"age": 30}, "age", "30"),
    ({"csf": [{"result": "maybe", "method": "cytology"}]}, "csf[1].result", "maybe"),
    ({"csf": [{"cytology": "maybe"}]}, "csf[1].cytology", "maybe"),
    ({"csf": [{"cytology": "negative", "traumatic": "very"}]}, "csf[1].traumatic", "very"),
    ({"csf": [{"cytology": "negative", "PCR": "negative"}]}, "csf[1]", "PCR"),
    ({"csf": ["negative"]}, "csf[1]", "negative"),
    ({"csf": [{"traumatic": "no"}]}, "csf[1]", "no result"),
    ({"csf": "negative"}, "csf", "negative"),
    ({"otalgia": "yes"}, "otalgia", "yes"),
    ({"circulating_blasts": "many"}, "circulating_blasts", "many"),
])
def test_invalid_patient_names_field_value_and_allowed(data, field, value):
    with pytest.raises(F.InputError) as exc:
        F.parse_patient(data, source="p.yaml")
    msg = str(exc.value)
    assert "p.yaml" in msg and field in msg and value in msg
    assert "allowed" in msg or "give" in msg


def test_every_problem_is_reported_at_once():
    with pytest.raises(F.InputError) as exc:
        F.parse_patient({"lineage": "x", "mri": "y"})
    assert len(exc.value.problems) == 2


def test_too_many_lps_refused_whole_and_errors_capped():
    with pytest.raises(F.InputError, match="at most 6"):
        F.parse_patient({"csf": ["negative:cytology"] * 7})
    with pytest.raises(F.InputError) as exc:  # 100,000 bad LPs: one problem, not 100,000
        F.parse_patient({"csf": ["maybe"] * 100_000})
    assert len(str(exc.value)) < 2_000
    with pytest.raises(F.InputError) as exc:  # many unknown keys: the message is capped with a count
        F.parse_patient({f"key{i}": 1 for i in range(10_000)})
    assert "and 9,950 more" in str(exc.value) and len(str(exc.value)) < 30_000


def test_unknown_key_gets_a_did_you_mean():
    with pytest.raises(F.InputError, match="did you mean 'laterality'"):
        F.parse_patient({"lateralty": "bilateral"})
    with pytest.raises(F.InputError, match="did you mean 'flow'"):
        F.parse_patient({"csf": [{"flwo": "negative"}]})


def test_overrides_replace_file_values():
    base = F.parse_patient({"lineage": "AML", "csf": ["negative:cytology"]})
    p = F.with_overrides(base, {"lineage": "T-ALL", "csf": ["positive:flow", "cytology=negative,flow=negative"]})
    assert p.lineage == "T-ALL" and [lp.code for lp in p.csf] == ["flow=positive", "cytology=negative,flow=negative"]


def test_unquoted_yes_no_accepted_for_yes_no_findings_only():
    p = F.parse_patient({"recent_vincristine": True, "recent_hsct": False, "csf": [{"flow": "negative", "traumatic": True}]})
    assert p.recent_vincristine == "yes" and p.recent_hsct == "no" and p.csf[0].traumatic == "yes"
    with pytest.raises(F.InputError, match="laterality"):
        F.parse_patient({"laterality": True})
    with pytest.raises(F.InputError, match="id"):
        F.parse_patient({"id": True})


def test_a_yaml_boolean_in_another_finding_says_what_is_allowed():
    """`vesicles: no` is read by YAML as False: the message names the levels, not only 'False'."""
    with pytest.raises(F.InputError) as exc:
        F.parse_patient({"vesicles": False})
    msg = str(exc.value)
    assert "vesicles" in msg and "absent, present" in msg and "boolean" in msg


def test_schema_names_and_levels_of_design_section_2():
    sc = SC.default()
    assert sc.levels["mri"] == ("normal", "facial_nerve_enhancement", "vii_viii_enhancement", "otomastoid_inflammation",
                                "multiple_nerve_or_leptomeningeal", "mass")
    for name, levels in {"age_group": ("child", "adult"), "recent_vincristine": ("no", "yes"),
                         "recent_hsct": ("no", "yes"), "forehead": ("involved", "spared"),
                         "onset": ("acute", "progressive"), "eighth_nerve": ("none", "involved"),
                         "vesicles": ("absent", "present"), "otoscopy": ("normal", "abnormal"),
                         "csf_profile": ("normal", "protein_only", "pleocytosis"),
                         "otalgia": ("absent", "present"), "circulating_blasts": ("absent", "present")}.items():
        assert sc.levels[name] == levels
    assert sc.lp.methods == ("cytology", "flow") and sc.lp.traumatic == ("no", "yes") and sc.lp.max_lps == 6
    assert sc.context == ("lineage", "remission", "age_group", "recent_vincristine", "recent_hsct", "circulating_blasts")


def test_forehead_spared_is_out_of_scope_not_bad_input():
    p = F.parse_patient({"forehead": "spared"})
    assert p.central and not p.in_scope and p.scope_keys == ("central",)
    assert F.parse_patient({"forehead": "involved"}).in_scope
