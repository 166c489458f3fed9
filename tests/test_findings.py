import pytest

from palsy.model import findings as F


def test_valid_patient_and_unknowns():
    p = F.parse_patient({"id": "a", "lineage": "T-ALL", "remission": "unknown", "laterality": None,
                         "csf": [{"result": "negative", "method": "cytology"}, "positive:flow"]})
    assert p.lineage == "T-ALL" and p.remission is None and p.laterality is None
    assert [lp.code for lp in p.csf] == ["negative:cytology", "positive:flow"]


def test_at_diagnosis_is_answered_as_not_in_remission():
    p = F.parse_patient({"remission": "at_diagnosis"})
    assert p.at_diagnosis and p.level("remission") == "not_in_remission"


@pytest.mark.parametrize("data, field, value", [
    ({"lineage": "T-cell"}, "lineage", "T-cell"),
    ({"mri": "enhancing"}, "mri", "enhancing"),
    ({"age": 30}, "age", "30"),
    ({"csf": [{"result": "maybe", "method": "cytology"}]}, "csf[1].result", "maybe"),
    ({"csf": ["negative"]}, "csf[1]", "negative"),
    ({"csf": "negative"}, "csf", "negative"),
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


def test_too_many_lps():
    with pytest.raises(F.InputError, match="at most 6"):
        F.parse_patient({"csf": ["negative:cytology"] * 7})


def test_overrides_replace_file_values():
    base = F.parse_patient({"lineage": "AML", "csf": ["negative:cytology"]})
    p = F.with_overrides(base, {"lineage": "T-ALL", "csf": ["positive:flow", "negative:flow"]})
    assert p.lineage == "T-ALL" and [lp.code for lp in p.csf] == ["positive:flow", "negative:flow"]


def test_unquoted_yes_no_accepted_for_yes_no_findings_only():
    p = F.parse_patient({"recent_vincristine": True, "recent_hsct": False})
    assert p.recent_vincristine == "yes" and p.recent_hsct == "no"
    with pytest.raises(F.InputError, match="laterality"):
        F.parse_patient({"laterality": True})
    with pytest.raises(F.InputError, match="id"):
        F.parse_patient({"id": True})


def test_schema_names_and_levels_of_design_section_2():
    assert F.LEVELS["mri"] == ("normal", "facial_nerve_enhancement", "vii_viii_enhancement", "otomastoid_inflammation",
                               "multiple_nerve_or_leptomeningeal", "mass")
    for name, levels in {"age_group": ("child", "adult"), "recent_vincristine": ("no", "yes"),
                         "recent_hsct": ("no", "yes"), "forehead": ("involved", "spared"),
                         "onset": ("acute", "progressive"), "eighth_nerve": ("none", "involved"),
                         "vesicles": ("absent", "present"), "otoscopy": ("normal", "abnormal"),
                         "csf_profile": ("normal", "protein_only", "pleocytosis")}.items():
        assert F.LEVELS[name] == levels


def test_forehead_spared_is_out_of_scope_not_bad_input():
    p = F.parse_patient({"forehead": "spared"})
    assert p.central and not p.in_scope
    assert F.parse_patient({"forehead": "involved"}).in_scope
