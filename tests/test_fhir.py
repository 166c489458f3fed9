"""FHIR in (issue #22 item 1, 6): the mapping table, the pure mapping, the generated example bundles and
``palsy posterior --fhir``. Written against the schema in use, so it holds before and after findings are
added to it."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from palsy.model import fhir as X
from palsy.model import fhir_example as XE
from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from tests.conftest import PATIENTS, REPO, run_palsy

pytestmark = pytest.mark.xdist_group("fhir")

SOURCES = sorted(PATIENTS.glob("*.yaml"))
ONSET = dt.date(2025, 1, 15)
LOINC, SCT = "http://loinc.org", "http://snomed.info/sct"


@pytest.fixture(scope="module")
def table():
    return X.load_table()


def _bundle(*resources, patient=None):
    pat = patient or {"resourceType": "Patient", "id": "p1", "birthDate": "1990-06-01"}
    entries = [{"fullUrl": f"Patient/{pat['id']}", "resource": pat}]
    for i, r in enumerate(resources):
        r = {"id": f"r{i}", "subject": {"reference": f"Patient/{pat['id']}"}, **r}
        entries.append({"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _palsy(onset=ONSET, side="7771000"):
    r = {"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "G51.0"}]},
         "onsetDateTime": onset.isoformat()}
    if side:
        r["bodySite"] = [{"coding": [{"system": SCT, "code": side}]}]
    return r


def _lab(code, day, value=None, unit="/uL", system=LOINC, coded=None, **extra):
    r = {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": system, "code": code}]},
         "effectiveDateTime": day.isoformat(), **extra}
    if value is not None:
        r["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    if coded is not None:
        r["valueCodeableConcept"] = {"coding": [{"system": SCT, "code": {"positive": "10828004",
                                                                          "negative": "260385009"}[coded]}]}
    return r


def _vinca(day, status="completed"):
    return {"resourceType": "MedicationAdministration", "status": status, "effectiveDateTime": day.isoformat(),
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01CA02"}]}}


def _csf_entries(patient: F.Patient) -> list[dict]:
    return [lp.to_dict() if hasattr(lp, "to_dict") else {"result": lp.result, "method": lp.method} for lp in patient.csf]


# --- the table -------------------------------------------------------------------------------------------

def test_every_row_names_its_source_and_the_windows_theirs(table):
    assert table.rows and all(r.source and r.display for r in table.rows)
    raw = Y.load(REPO / "priors" / "fhir_map.yaml")
    assert all(w.get("source") for w in raw["windows"].values())
    # the index palsy, the lineages, vincristine by ATC and RxNorm, and the CSF/blood measures are all there
    roles = {(r.role, r.measure or r.level or r.display) for r in table.rows}
    for need in [("lab", "csf_wbc"), ("lab", "csf_protein"), ("lab", "csf_rbc"), ("lab", "csf_cytology"),
                 ("lab", "csf_flow"), ("lab", "blood_blasts"), ("finding", "T-ALL"), ("finding", "B-ALL"),
                 ("finding", "AML")]:
        assert need in roles, need
    vinca = [r for r in table.rows if r.role == "medication" and r.finding == "recent_vincristine"]
    assert {r.system for r in vinca if r.display == "vincristine"} >= {"http://www.whocc.no/atc",
                                                                        "http://www.nlm.nih.gov/research/umls/rxnorm"}
    # each exposure row sets a level of the schema within a window of the table counted in days or months
    exposures = [r for r in table.rows if r.role in X.EXPOSURE_ROLES]
    assert {(r.role, r.finding) for r in exposures} >= {("medication", "recent_vincristine"), ("procedure", "recent_hsct")}
    for r in exposures:
        assert r.level in table.schema.allowed(r.finding) and table.units[r.window] in X.WINDOW_UNITS
    assert table.units == {"recent_vincristine_days": "days", "recent_hsct_months": "months"}


def test_the_mapping_code_names_no_exposure(table):
    """The exposures are the table's rows: the code names none of their findings or windows."""
    code = (REPO / "model" / "fhir.py").read_text()
    for r in table.rows:
        if r.role in X.EXPOSURE_ROLES:
            assert r.finding not in code and r.window not in code, r


def test_a_bad_table_is_refused_with_the_row_named(tmp_path):
    raw = Y.load(REPO / "priors" / "fhir_map.yaml")
    raw["codes"].append({"system": "x", "code": "y", "display": "z", "role": "guess", "source": "none"})
    (tmp_path / "fhir_map.yaml").write_text(json.dumps(raw))
    with pytest.raises(F.InputError, match="role 'guess'"):
        X.load_table(tmp_path)


# --- the example bundles (generated, current, and mapped back to the same patient) ----------------------------

@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_example_bundles_are_current(src):
    from palsy.scripts import fhir_examples

    out = src.with_name(src.stem + ".fhir.json")
    assert out.read_text(encoding="utf-8") == fhir_examples.bundle_text(src), \
        f"{out.name} is stale: run python -m palsy.scripts.fhir_examples"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_example_bundle_maps_back_to_its_patient(src, table):
    want = F.parse_patient(Y.load(src), str(src))
    m = X.map_bundle(json.loads(src.with_name(src.stem + ".fhir.json").read_text()), table)
    got = F.parse_patient(m.patient, "fhir")
    # a record's patient is named Patient/<id>, never a library case's bare id (not answered as that case)
    assert got.id == f"Patient/{want.id}" and m.record_id == want.id
    assert got.values == want.values and got.csf == want.csf
    assert m.has_palsy and m.has_leukaemia and m.onset == ONSET.isoformat()
    assert not m.ignored and not m.notes
    unknown = [k for k, v in want.values.items() if v is None]
    assert set(unknown) <= set(m.not_found)


# --- windows from the onset ------------------------------------------------------------------------------------

@pytest.mark.parametrize("days,expect", [(0, "yes"), (27, "yes"), (28, "yes"), (29, None), (400, None)])
def test_recent_vincristine_is_a_dose_within_the_window_before_onset(days, expect, table):
    m = X.map_bundle(_bundle(_palsy(), _vinca(ONSET - dt.timedelta(days=days))), table)
    assert m.patient.get("recent_vincristine") == expect
    if expect is None:  # never "no": absence of a dose in the record is not a fact
        assert "recent_vincristine" in m.not_found and any("outside" in i["why"] for i in m.ignored)


def test_an_order_or_a_cancelled_dose_is_not_a_dose(table):
    order = {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "authoredOn": "2025-01-10",
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "11202"}]}}
    m = X.map_bundle(_bundle(_palsy(), order, _vinca(ONSET - dt.timedelta(days=3), status="not-done")), table)
    assert "recent_vincristine" not in m.patient
    assert {i["why"].split(":")[0] for i in m.ignored} >= {"order status active", "administration status not-done"}


@pytest.mark.parametrize("months,expect", [(11, "yes"), (13, None)])
def test_recent_hsct_within_twelve_months(months, expect, table):
    proc = {"resourceType": "Procedure", "status": "completed",
            "code": {"coding": [{"system": "urn:palsy:code", "code": "allogeneic-hsct"}]},
            "performedDateTime": (ONSET - dt.timedelta(days=30 * months + 2)).isoformat()}
    assert X.map_bundle(_bundle(_palsy(), proc), table).patient.get("recent_hsct") == expect


@pytest.mark.parametrize("born,expect", [("2007-01-16", "child"), ("2007-01-15", "adult"), ("2007", None)])
def test_age_group_at_onset(born, expect, table):
    m = X.map_bundle(_bundle(_palsy(), patient={"resourceType": "Patient", "id": "p1", "birthDate": born}), table)
    assert m.patient.get("age_group") == expect


def test_without_an_onset_date_a_dose_is_not_read_as_before_it_and_tests_are_not_placed(table):
    # s13 #7: "today" as the onset had turned a dose given after the (unknown) onset into an exposure before it
    palsy = _palsy()
    palsy.pop("onsetDateTime")
    today = dt.date(2025, 3, 1)
    m = X.map_bundle(_bundle(palsy, _vinca(today - dt.timedelta(days=5)), _lab("urn:palsy:code", today, system="x")),
                     table, today=today)
    assert "recent_vincristine" not in m.patient and m.onset is None
    assert any("onset date is not known" in n for n in m.notes)
    assert any("may have come after" in i["why"] for i in m.ignored)


# --- CSF: LPs by collection date, profile, traumatic, blasts ---------------------------------------------------

def test_csf_results_grouped_into_lps_by_date_with_profile_and_traumatic(table):
    d1, d2 = ONSET + dt.timedelta(days=1), ONSET + dt.timedelta(days=9)
    m = X.map_bundle(_bundle(
        _palsy(),
        _lab("csf-cytology", d1, system="urn:palsy:code", coded="negative"),
        _lab("805-2", d1, 12), _lab("26454-9", d1, 40),
        _lab("csf-flow", d2, system="urn:palsy:code", coded="positive"),
        _lab("csf-cytology", ONSET - dt.timedelta(days=20), system="urn:palsy:code", coded="positive"),  # before onset
        _lab("26446-5", d1, 3, unit="%")), table)
    assert m.patient.get("csf_profile") == "pleocytosis"
    lps = F.parse_patient(m.patient, "fhir").csf
    assert len(lps) == 2 and any("before the palsy" in i["why"] for i in m.ignored)
    if X.csf_new_form(table.schema):
        assert lps[0].result("cytology") == "negative" and lps[0].traumatic == "yes"
        assert lps[1].result("flow") == "positive"
        assert m.patient.get("circulating_blasts") == "present"
    else:
        assert [(lp.result, lp.method) for lp in lps] == [("negative", "cytology"), ("positive", "flow")]
        assert "csf: traumatic" in m.not_in_schema


@pytest.mark.parametrize("cells,protein,interp,expect", [
    (5, 60, None, "protein_only"), (5, 30, None, "normal"), (6, 30, None, "pleocytosis"),
    (2, None, "H", "protein_only"), (2, None, None, None)])
def test_csf_profile_of_the_first_lp(cells, protein, interp, expect, table):
    d1 = ONSET + dt.timedelta(days=1)
    prot = _lab("2880-3", d1, protein, unit="mg/dL",
                referenceRange=[{"high": {"value": 45, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                                          "code": "mg/dL"}}])
    if protein is None:
        prot.pop("referenceRange")
        prot["valueQuantity"] = {"value": 50, "unit": "mg/dL"}
        if interp:
            prot["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                             "v3-ObservationInterpretation", "code": interp}]}]
    m = X.map_bundle(_bundle(_palsy(), _lab("805-2", d1, cells), prot), table)
    assert m.patient.get("csf_profile") == expect


@pytest.mark.parametrize("rbc,expect", [(10, "yes"), (9, "no")])
def test_traumatic_from_red_cells_at_the_table_limit(rbc, expect, table):
    d1 = ONSET + dt.timedelta(days=1)
    m = X.map_bundle(_bundle(_palsy(), _lab("csf-cytology", d1, system="urn:palsy:code", coded="negative"),
                             _lab("792-2", d1, rbc)), table)
    if X.csf_new_form(table.schema):
        assert F.parse_patient(m.patient, "fhir").csf[0].traumatic == expect
    else:
        assert "csf: traumatic" in m.not_in_schema


# --- conditions, imaging, what is not read -----------------------------------------------------------------------

def test_lineage_from_morphology_and_a_conflict_left_unknown(table):
    tall = {"resourceType": "Condition", "code": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/icd-o-3", "code": "9837/3"},
        {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C91.0"}]}}
    assert X.map_bundle(_bundle(_palsy(), tall), table).patient["lineage"] == "T-ALL"
    aml = {"resourceType": "Condition", "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/icd-o-3",
                                                             "code": "9861/3"}]}}
    m = X.map_bundle(_bundle(_palsy(), tall, aml), table)
    assert "lineage" not in m.patient and any("more than one" in n for n in m.notes)


def test_bilateral_from_two_sides_and_mri_precedence(table):
    right = _palsy(side="24028007")
    mri = [{"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "MRI"},
            "effectiveDateTime": (ONSET + dt.timedelta(days=k)).isoformat(),
            "conclusionCode": [{"coding": [{"system": "urn:palsy:mri", "code": level}]}]}
           for k, level in ((1, "facial_nerve_enhancement"), (3, "mass"))]
    ct_normal = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CT"},
                 "effectiveDateTime": ONSET.isoformat(), "conclusionCode": [{"coding": [{"system": "urn:palsy:ct",
                                                                                         "code": "normal"}]}]}
    m = X.map_bundle(_bundle(_palsy(), right, *mri, ct_normal), table)
    assert m.patient["laterality"] == "bilateral" and m.patient["mri"] == "mass"
    assert any(i["code"] == "urn:palsy:ct|normal" for i in m.ignored)  # a normal CT is not a normal MRI


def test_unknown_codes_are_ignored_with_the_reason_never_guessed(table):
    odd = [{"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": "0000-0"}]},
            "valueString": "vesicles on the ear"},
           {"resourceType": "Condition", "code": {"coding": [{"system": SCT, "code": "1"}]}},
           {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}]
    m = X.map_bundle(_bundle(_palsy(), *odd), table)
    assert set(m.patient) == {"id", "laterality", "age_group"}
    assert len(m.ignored) == 3 and {i["why"] for i in m.ignored} >= {"code not in the mapping table",
                                                                      "resource type Encounter is not read"}
    assert "vesicles" in m.not_found and "examine and enter" in X.finding_lines(m.not_found)


def test_palsys_own_observation_for_any_finding_and_one_the_schema_does_not_know(table):
    local = lambda f, v: {"resourceType": "Observation", "status": "final",  # noqa: E731
                          "code": {"coding": [{"system": "urn:palsy:finding", "code": f}]},
                          "valueCodeableConcept": {"coding": [{"system": "urn:palsy:level", "code": v}]},
                          "effectiveDateTime": ONSET.isoformat()}
    m = X.map_bundle(_bundle(_palsy(), local("vesicles", "present"), local("tongue_colour", "blue"),
                             local("onset", "sideways")), table)
    assert m.patient["vesicles"] == "present"
    assert "tongue_colour" in m.not_in_schema and "onset: sideways" in m.not_in_schema
    assert "onset" not in m.patient


# --- bad bundles ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mutate,words", [
    (lambda b: b.update(resourceType="Patient"), "Bundle"),
    (lambda b: b["entry"][0]["resource"].update(birthDate="20x0"), "birthDate"),
    (lambda b: b["entry"].pop(0), "no Patient"),
    (lambda b: b["entry"].append({"resource": {"resourceType": "Patient", "id": "p2"}}), "different Patient"),
    (lambda b: b["entry"][1]["resource"].update(subject={"reference": "Patient/p2"}), "another patient"),
])
def test_bad_bundles_are_clear_errors(mutate, words, table):
    b = _bundle(_palsy())
    mutate(b)
    with pytest.raises(X.FhirError, match=words):
        X.map_bundle(b, table)


def test_the_mapping_reads_no_network_and_no_presentation():
    import ast

    tree = ast.parse((REPO / "model" / "fhir.py").read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
           {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not mods & {"urllib", "urllib.request", "httpx", "requests", "http.client", "socket", "palsy.reports"}


# --- the command line -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_posterior_fhir_gives_the_numbers_of_the_patient_file(palsy, tmp_path):
    """The bundle's answer is its patient file's, under an id that is no library case's: a record is never a
    library case, so it is not answered with source-002 left out as the library's own file is."""
    src = PATIENTS / "source-002.yaml"
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(src.read_text().replace("id: source-002", "id: hospital-002"))
    by_file = json.loads(palsy("posterior", "--patient", str(renamed), "--json", check=True).stdout)
    proc = palsy("posterior", "--fhir", str(src.with_name("source-002.fhir.json")), "--json", check=True)
    by_fhir = json.loads(proc.stdout)
    assert by_fhir["probability"] == by_file["probability"] and by_fhir["causes"] == by_file["causes"]
    assert by_fhir["left_out_case"] is None and by_fhir["patient"]["id"] == "Patient/source-002"
    assert "not found in the record" in proc.stderr and "examine and enter" in proc.stderr
    assert set(by_fhir["fhir"]) >= {"not_found", "ignored", "not_in_schema"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": '
                   '{"resourceType": "Patient", "birthDate": "1990-13-45"}}]}')
    r = palsy("posterior", "--fhir", str(bad))
    assert r.returncode == 2 and "birthDate" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "notjson.json").write_text("{")
    r = palsy("posterior", "--fhir", str(tmp_path / "notjson.json"))
    assert r.returncode == 2 and "not JSON" in r.stderr
    both = palsy("posterior", "--fhir", str(src.with_name("source-002.fhir.json")), "--patient", str(src))
    assert both.returncode == 2 and "give one of them" in both.stderr


def _renamed(bundle: dict, old: str, new: str) -> dict:
    """``bundle`` with its Patient's id ``old`` written ``new`` everywhere (the id, fullUrls, subjects)."""
    return json.loads(json.dumps(bundle).replace(f'"Patient/{old}"', f'"Patient/{new}"')
                      .replace(f'"id": "{old}"', f'"id": "{new}"'))


def library_id_record(findings_changed: bool = True) -> dict:
    """source-001's bundle (a library case's id) with other findings: a progressive palsy, no other cranial
    nerve, no MRI (the hospital's patient who happens to carry that id)."""
    b = json.loads((PATIENTS / "source-001.fhir.json").read_text())
    if findings_changed:
        keep = []
        for e in b["entry"]:
            r = e["resource"]
            code = (r.get("code") or {}).get("coding", [{}])[0].get("code")
            if r["resourceType"] == "DiagnosticReport" or code == "other_cranial_nerves":
                continue
            if code == "onset":
                r["valueCodeableConcept"]["coding"][0]["code"] = "progressive"
            keep.append(e)
        b["entry"] = keep
    return b


def test_a_records_patient_is_never_named_as_a_library_case(table):
    """The mapped id is Patient/<id> whatever the Patient.id (here a library case's, source-001); no case of the
    library is named so (a case named Patient/... would make a record of that id its case again)."""
    from palsy.model import evidence as E

    m = X.map_bundle(library_id_record(), table)
    assert m.patient["id"] == "Patient/source-001" and m.record_id == "source-001"
    ev = E.load(REPO / "priors")
    names = [n for c in ev.cases for n in (c.id, *c.also_known_as)]
    assert "source-001" in names and not [n for n in names if n.startswith(X.RECORD_PREFIX)]


@pytest.mark.slow
def test_a_record_whose_patient_id_is_a_library_cases_is_answered_as_any_other_record(palsy, tmp_path):
    """A record whose Patient.id is a library case's (source-001) but whose findings differ was answered with
    that case left out of the posterior (PSIS leave-one-out, meant for the library case itself): its answer is
    now the one the same findings get under another id."""
    as_case = tmp_path / "source-001-like.json"
    as_case.write_text(json.dumps(library_id_record()))
    other = tmp_path / "hospital-7.json"
    other.write_text(json.dumps(_renamed(library_id_record(), "source-001", "hospital-7")))
    a = json.loads(palsy("posterior", "--fhir", str(as_case), "--json", check=True).stdout)
    b = json.loads(palsy("posterior", "--fhir", str(other), "--json", check=True).stdout)
    assert a["patient"]["id"] == "Patient/source-001" and b["patient"]["id"] == "Patient/hospital-7"
    assert a["left_out_case"] is None and b["left_out_case"] is None
    assert a["probability"] == b["probability"] and a["causes"] == b["causes"] and a["log_odds"] == b["log_odds"]
    # the library's own file is still answered with itself left out
    own = json.loads(palsy("posterior", "--patient", str(PATIENTS / "source-001.yaml"), "--json", check=True).stdout)
    assert own["left_out_case"] and own["left_out_case"]["case"] == "meqorali2025_tall21m"


def test_example_bundles_survive_a_deep_copy_roundtrip(table):
    """The mapping does not change the bundle it reads."""
    b = json.loads((PATIENTS / "source-001.fhir.json").read_text())
    before = copy.deepcopy(b)
    X.map_bundle(b, table)
    assert b == before


def test_a_table_mapping_to_a_level_the_schema_lacks_is_refused(tmp_path):
    """The table's targets are checked against the schema when ``--fhir`` loads it (not only by
    ``palsy evidence``)."""
    raw = Y.load(REPO / "priors" / "fhir_map.yaml")
    row = next(r for r in raw["codes"] if r.get("role") == "finding" and r.get("finding") == "remission")
    raw["codes"].append({**row, "code": "zz-test", "level": "sideways"})
    (tmp_path / "fhir_map.yaml").write_text(json.dumps(raw))
    with pytest.raises(F.InputError, match="sideways"):
        X.load_table(tmp_path)


# --- the priors in use: a new exposure is data (issue 20, item 1) -----------------------------------------------

#: fhir_map.yaml of the copy: nelarabine's window (DEMONSTRATION, as the copy's schema and rates).
NELARABINE_WINDOW = """\
  recent_nelarabine_days:
    value: 28
    unit: days
    source: DEMONSTRATION (issue 20), not palsy's evidence; the copy's schema "a nelarabine course in the 4 weeks before onset"
"""

#: fhir_map.yaml of the copy: nelarabine by its ATC code sets the copy's new context exposure.
NELARABINE_ROW = """\
  - {system: "http://www.whocc.no/atc", code: L01BB07, display: nelarabine, role: medication,
     finding: recent_nelarabine, level: "yes", window: recent_nelarabine_days,
     source: "DEMONSTRATION (issue 20): ATC L01BB07 nelarabine, in a copy of priors/ only"}
"""


@pytest.fixture(scope="module")
def nelarabine(tmp_path_factory):
    """A copy of priors/ with ``recent_nelarabine`` (tests/test_schema_as_data.py) and its row and window in
    the copy's fhir_map.yaml."""
    from tests.test_schema_as_data import demo_copy, insert_after

    copy = demo_copy(tmp_path_factory.mktemp("nelarabine"))
    text = insert_after((copy / "fhir_map.yaml").read_text(), "\nwindows:\n", NELARABINE_WINDOW)
    (copy / "fhir_map.yaml").write_text(text.rstrip("\n") + "\n" + NELARABINE_ROW)
    return copy


def _nelarabine(day, status="completed"):
    return {"resourceType": "MedicationAdministration", "status": status, "effectiveDateTime": day.isoformat(),
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01BB07"}]}}


@pytest.mark.parametrize("days,expect", [(0, "yes"), (28, "yes"), (29, None)])
def test_a_new_exposure_is_read_through_the_table_and_schema_of_the_priors_in_use(nelarabine, table, days, expect):
    ours = X.load_table(nelarabine)
    assert "recent_nelarabine" in ours.schema.findings and ours.units["recent_nelarabine_days"] == "days"
    bundle = _bundle(_palsy(), _nelarabine(ONSET - dt.timedelta(days=days)))
    m = X.map_bundle(bundle, ours)
    assert m.patient.get("recent_nelarabine") == expect
    if expect is None:  # outside its window: unknown, never "no"
        assert "recent_nelarabine" in m.not_found and any("outside" in i["why"] for i in m.ignored)
    # palsy's own table and schema: the drug is not read and the finding does not exist
    shipped = X.map_bundle(bundle, table)
    assert "recent_nelarabine" not in shipped.patient and "recent_nelarabine" not in shipped.not_found
    assert [i["why"] for i in shipped.ignored if "L01BB07" in i["code"]] == \
        ["medication not in the mapping table"]


def test_the_schema_is_passed_not_assumed(nelarabine):
    """The copy's table read against palsy's own schema: the finding it sets is listed, not set."""
    from palsy.model import schema as SC

    m = X.map_bundle(_bundle(_palsy(), _nelarabine(ONSET - dt.timedelta(days=3))), X.load_table(nelarabine),
                     schema=SC.default())
    assert "recent_nelarabine" not in m.patient and m.not_in_schema == ["recent_nelarabine"]


def test_the_example_bundle_of_a_new_exposure_maps_back(nelarabine):
    from palsy.model import schema as SC
    from tests.test_schema_as_data import DEMO_PATIENT

    ours, sc = X.load_table(nelarabine), SC.read(nelarabine)
    raw = Y.loads(DEMO_PATIENT, "demo")
    bundle = X.validate(XE.example_bundle(raw, ours))
    given = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationAdministration"]
    assert [c["code"] for r in given for c in r["medicationCodeableConcept"]["coding"]] == ["L01BB07"]
    m = X.map_bundle(bundle, ours)
    want, got = F.parse_patient(raw, "demo", schema=sc), F.parse_patient(m.patient, "fhir", schema=sc)
    assert got.values == want.values and got.csf == want.csf and not m.ignored and not m.not_in_schema


@pytest.mark.parametrize("change,words", [
    (lambda row: row.pop("window"), "names the finding and level it sets and its window"),
    (lambda row: row.update(window="recent_nelarabine_weeks"), "'recent_nelarabine_weeks' is not a window"),
    (lambda row: row.update(level="sometimes"), "'sometimes' is not a level of recent_nelarabine"),
    (lambda row: row.update(level=True), "quote it"),
])
def test_a_bad_exposure_row_is_refused_with_the_row_named(nelarabine, tmp_path, change, words):
    import shutil

    shutil.copy(nelarabine / "schema.yaml", tmp_path / "schema.yaml")
    raw = Y.load(nelarabine / "fhir_map.yaml")
    change(raw["codes"][-1])
    (tmp_path / "fhir_map.yaml").write_text(json.dumps(raw))
    with pytest.raises(F.InputError, match="L01BB07") as err:
        X.load_table(tmp_path)
    assert words in str(err.value)


def test_a_window_without_its_unit_is_refused(nelarabine, tmp_path):
    import shutil

    shutil.copy(nelarabine / "schema.yaml", tmp_path / "schema.yaml")
    raw = Y.load(nelarabine / "fhir_map.yaml")
    raw["windows"]["recent_nelarabine_days"].pop("unit")
    (tmp_path / "fhir_map.yaml").write_text(json.dumps(raw))
    with pytest.raises(F.InputError, match="give windows.recent_nelarabine_days.unit"):
        X.load_table(tmp_path)


class _Stop(Exception):
    """Stops ``palsy posterior`` once the patient is parsed (before any fit is loaded)."""


@pytest.mark.parametrize("use_copy", [True, False], ids=["priors-copy", "shipped"])
def test_posterior_fhir_reads_the_record_with_the_priors_of_the_command(nelarabine, tmp_path, monkeypatch, use_copy):
    """``palsy posterior --priors COPY --fhir BUNDLE``, up to the parsed patient (the answer needs a fit)."""
    import argparse

    from palsy.scripts.commands import common, posterior

    monkeypatch.delenv("PALSY_PRIORS", raising=False)
    path = tmp_path / "record.json"
    path.write_text(json.dumps(_bundle(_palsy(), _vinca(ONSET - dt.timedelta(days=2)),
                                       _nelarabine(ONSET - dt.timedelta(days=3)))))
    seen = {}
    parse = common.patient_from

    def patient_from(args, file, fhir=None):
        seen["mapping"], seen["patient"] = fhir, parse(args, file, fhir)
        raise _Stop

    monkeypatch.setattr(common, "patient_from", patient_from)
    args = argparse.Namespace(priors=str(nelarabine) if use_copy else None, fhir=str(path), patient=None)
    with pytest.raises(_Stop):
        posterior.run(args)
    patient = seen["patient"]
    assert patient.values["recent_vincristine"] == "yes"
    if use_copy:
        assert patient.values["recent_nelarabine"] == "yes"
    else:
        assert "recent_nelarabine" not in patient.values
        assert any("L01BB07" in i["code"] for i in seen["mapping"].ignored)


# --- the review of the FHIR mapping (/tmp/review/service.md items 1-8, 16, 17) ---------------------------------

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _local(finding, level, **extra):
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "urn:palsy:finding", "code": finding}]},
            "valueCodeableConcept": {"coding": [{"system": "urn:palsy:level", "code": level}]},
            "effectiveDateTime": ONSET.isoformat(), **extra}


def _leukaemia(code, status=None, system=ICD10CM, **extra):
    r = {"resourceType": "Condition", "code": {"coding": [{"system": system, "code": code}]}, **extra}
    if status:
        r["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": status}]}
    return r


@pytest.mark.parametrize("subject,refused", [
    ({"reference": "https://ehr.example/fhir/Patient/OTHER"}, "another patient"),
    ({"reference": "https://ehr.example/fhir/Patient/OTHER/_history/2"}, "another patient"),
    ({"reference": "Group/ward-7"}, "a Group, not to the Patient"),
    ({"reference": "urn:uuid:8d3e7c1a-0000-4000-8000-000000000001"}, "not the bundle's Patient"),
    ({"identifier": {"system": "urn:mrn", "value": "999"}}, "only an identifier"),
    ({"display": "J. Smith"}, "names no patient"),
    ({"reference": "https://ehr.example/fhir/Patient/p1"}, None),
    ({"reference": "Patient/p1/_history/3"}, None),
    ({"identifier": {"system": "urn:mrn", "value": "123"}}, None),
])
def test_another_patients_resource_is_refused_however_its_subject_is_written(subject, refused, table):
    """Item 1: every form of reference is read to the patient it names (an absolute one was never compared)."""
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1990-06-01",
               "identifier": [{"system": "urn:mrn", "value": "123"}]}
    bundle = _bundle(_palsy(), _local("vesicles", "present", subject=subject), patient=patient)
    if refused:
        with pytest.raises(X.FhirError, match=refused):
            X.map_bundle(bundle, table)
    else:
        assert X.map_bundle(bundle, table).patient["vesicles"] == "present"


def test_a_resource_palsy_does_not_read_is_refused_only_when_it_names_another_patient(table):
    encounter = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                 "subject": {"reference": "https://ehr.example/fhir/Patient/OTHER"}}
    with pytest.raises(X.FhirError, match="Encounter .*another patient"):
        X.map_bundle(_bundle(_palsy(), encounter), table)
    specimen = {"resourceType": "Specimen", "subject": {"reference": "Location/lab-1"}}
    assert [i["why"] for i in X.map_bundle(_bundle(_palsy(), specimen), table).ignored] == \
        ["resource type Specimen is not read"]


def test_an_absolute_reference_to_the_same_id_on_another_server_is_refused(table):
    b = _bundle(_palsy(), _local("vesicles", "present",
                                 subject={"reference": "https://other.example/fhir/Patient/p1"}))
    b["entry"][0]["fullUrl"] = "https://ehr.example/fhir/Patient/p1"
    with pytest.raises(X.FhirError, match="a Patient of another server"):
        X.map_bundle(b, table)
    b["entry"][-1]["resource"]["subject"] = {"reference": "https://ehr.example/fhir/Patient/p1"}
    assert X.map_bundle(b, table).patient["vesicles"] == "present"


def test_a_clinical_resource_without_a_subject_is_not_read(table):
    bundle = _bundle(_palsy(), _local("vesicles", "present"))
    bundle["entry"][-1]["resource"].pop("subject")
    m = X.map_bundle(bundle, table)
    assert "vesicles" not in m.patient and any(i["why"].startswith("no subject") for i in m.ignored)


def test_an_lp_whose_cytology_and_flow_are_pending_is_left_out_and_noted(table):
    """Item 2: a red-cell count alone (the LP's cytology still to come) made the findings invalid (422)."""
    d1, d2 = ONSET + dt.timedelta(days=1), ONSET + dt.timedelta(days=3)
    m = X.map_bundle(_bundle(_palsy(), _lab("26454-9", d1, 0)), table)
    assert "csf" not in m.patient and any("LP on 2025-01-16: no final cytology or flow" in n for n in m.notes)
    F.parse_patient(m.patient, "fhir")
    # the first LP pending, a later one resulted: the first LP's profile is not read with the later LP as first
    m = X.map_bundle(_bundle(_palsy(), _lab("805-2", d1, 12), _lab("26454-9", d1, 0),
                             _lab("csf-cytology", d2, system="urn:palsy:code", coded="negative")), table)
    assert len(F.parse_patient(m.patient, "fhir").csf) == 1 and "csf_profile" not in m.patient
    assert any("csf_profile: the first LP (2025-01-16)" in n for n in m.notes)


@pytest.mark.parametrize("code,remission", [("C91.00", "not_in_remission"), ("C91.01", None),
                                            ("C91.02", "not_in_remission")])
def test_an_all_coded_in_remission_or_in_relapse_is_a_leukaemia(code, remission, table):
    """Item 3: C91.01 and C91.02 alone were read as no leukaemia (no card)."""
    m = X.map_bundle(_bundle(_palsy(), _leukaemia(code, "active")), table)
    assert m.has_leukaemia and "lineage" not in m.patient and m.patient.get("remission") == remission


@pytest.mark.parametrize("code,remission", [("C92.00", "not_in_remission"), ("C92.01", None),
                                            ("C92.02", "not_in_remission")])
def test_an_aml_coded_in_icd_10_cm_is_an_aml_with_its_remission_status(code, remission, table):
    """AML coded C92.0- (ICD-10-CM) was read as no leukaemia (no card): no C92 code was in the table."""
    m = X.map_bundle(_bundle(_palsy(), _leukaemia(code, "active")), table)
    assert m.has_leukaemia and m.patient["lineage"] == "AML" and m.patient.get("remission") == remission


#: AML's other ICD-10-CM codes (the fifth character: 0 not having achieved remission, 1 in remission, 2 in
#: relapse); C94.01 and C94.21 are not in the table (their titles could not be confirmed).
OTHER_AML = [f"{stem}{d}" for stem in ("C92.4", "C92.5", "C92.6", "C92.A", "C93.0") for d in "012"] + \
    ["C94.00", "C94.02", "C94.20", "C94.22"]


@pytest.mark.parametrize("code", OTHER_AML)
def test_amls_other_icd_10_cm_codes_are_an_aml_with_the_remission_their_fifth_character_says(code, table):
    """AML coded C92.4- (APL: the schema has no level of its own for it), C92.5-, C92.6-, C92.A-, C93.0-, C94.0- or
    C94.2- was read as no leukaemia (no card): none was in the table."""
    m = X.map_bundle(_bundle(_palsy(), _leukaemia(code, "active")), table)
    remission = {"0": "not_in_remission", "1": None, "2": "not_in_remission"}[code[-1]]
    assert m.has_leukaemia and m.patient["lineage"] == "AML" and m.patient.get("remission") == remission, code
    assert not m.ignored
    if code.endswith("1"):  # in remission, on or off treatment not said: left unknown, with a note
        assert any(n.startswith("remission: ") and "enter it" in n for n in m.notes)
    rows = table.lookup({"system": ICD10CM, "code": code})
    assert {r.finding for r in rows} == {"lineage", "remission"} and all(r.source for r in rows)


@pytest.mark.parametrize("code", ["C94.01", "C94.21", "C92.4", "C92.43", "C93.1"])
def test_an_icd_10_cm_code_the_table_lacks_stays_unknown(code, table):
    """A code not in the table (unconfirmed, a category header, not a code, a chronic leukaemia) says nothing:
    no lineage, no remission, no leukaemia, and it is listed as not read."""
    m = X.map_bundle(_bundle(_palsy(), _leukaemia(code, "active")), table)
    assert not m.has_leukaemia and "lineage" not in m.patient and "remission" not in m.patient
    assert [(i["code"], i["why"]) for i in m.ignored] == [(f"{ICD10CM}|{code}", "code not in the mapping table")]


def test_a_leukaemia_conditions_clinical_status_says_whether_its_state_is_current(table):
    """Item 4: a resolved relapse, or an ALL 'not in remission' whose status is remission, set not_in_remission."""
    resolved = _leukaemia("C91.02", "resolved", abatementDateTime="2024-06-01")
    m = X.map_bundle(_bundle(_palsy(), resolved, _leukaemia("C91.01", "active")), table)
    assert "remission" not in m.patient and m.has_leukaemia
    assert any(i["why"] == "remission: not current (inactive or resolved)" for i in m.ignored)
    m = X.map_bundle(_bundle(_palsy(), _leukaemia("C91.00", "remission")), table)
    assert "remission" not in m.patient and m.has_leukaemia and any("clinicalStatus is remission" in n for n in m.notes)
    m = X.map_bundle(_bundle(_palsy(), _leukaemia("C91.00", abatementDateTime="2024-06-01")), table)
    assert "remission" not in m.patient
    # the lineage is read whatever the status; a relapse that is current is read
    tall = _leukaemia("9837/3", "resolved", system="http://terminology.hl7.org/CodeSystem/icd-o-3")
    m = X.map_bundle(_bundle(_palsy(), tall, _leukaemia("C91.02", "relapse")), table)
    assert m.patient["lineage"] == "T-ALL" and m.patient["remission"] == "not_in_remission"


@pytest.mark.parametrize("status,read", [("final", True), ("entered-in-error", False), ("cancelled", False),
                                         ("preliminary", False)])
def test_an_observation_coded_by_a_finding_row_is_read_only_when_final(status, read, table):
    """Item 5: a B-ALL Observation entered in error set the lineage and made a card."""
    obs = {"resourceType": "Observation", "status": status, "code": {"coding": [{"system": SCT, "code": "277571004"}]}}
    m = X.map_bundle(_bundle(_palsy(), obs), table)
    assert (m.patient.get("lineage") == "B-ALL") is read and m.has_leukaemia is read
    negative = {**obs, "status": "final", "valueBoolean": False}
    assert "lineage" not in X.map_bundle(_bundle(_palsy(), negative), table).patient


@pytest.mark.parametrize("change,dose", [({}, True), ({"doNotPerform": True}, False), ({"intent": "proposal"}, False),
                                         ({"intent": "plan"}, False), ({"intent": "original-order"}, True)])
def test_an_order_not_to_give_or_only_proposed_is_not_a_dose(change, dose, table):
    """Item 6: a completed MedicationRequest saying 'do not perform' (or a proposal) counted as a dose."""
    order = {"resourceType": "MedicationRequest", "status": "completed", "intent": "order",
             "authoredOn": (ONSET - dt.timedelta(days=9)).isoformat(),
             "dosageInstruction": [{"timing": {"event": [(ONSET - dt.timedelta(days=5)).isoformat()]}}],
             "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01CA02"}]},
             **change}
    m = X.map_bundle(_bundle(_palsy(), order), table)
    assert (m.patient.get("recent_vincristine") == "yes") is dose
    if not dose:
        assert "recent_vincristine" in m.not_found and len(m.ignored) == 1


@pytest.mark.parametrize("interp,expect", [(None, None), ("H", "protein_only")])
def test_a_protein_reference_range_high_without_a_value(interp, expect, table):
    """Item 7: Quantity.value is optional; a ``high`` without one was a KeyError (500)."""
    d1 = ONSET + dt.timedelta(days=1)
    prot = _lab("2880-3", d1, 50, unit="mg/dL", referenceRange=[{"high": {"unit": "mg/dL"}}])
    if interp:
        prot["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                         "v3-ObservationInterpretation", "code": interp}]}]
    m = X.map_bundle(_bundle(_palsy(), _lab("805-2", d1, 2), prot), table)
    assert m.patient.get("csf_profile") == expect


def test_a_deeply_nested_bundle_is_invalid_fhir_not_a_crash(table):
    """Item 8: an extension nested 400 deep (18 kB) exhausted the validator's recursion (500)."""
    ext = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(400):
        ext = {"url": "http://example.org/x", "extension": [ext]}
    patient = {"resourceType": "Patient", "id": "p1", "extension": [ext]}
    with pytest.raises(X.FhirError, match=f"nested more than {X.MAX_DEPTH} deep"):
        X.map_bundle(_bundle(_palsy(), patient=patient), table)


def _searchset(*resources, total=None, next_url=None, pid="p1"):
    entries = [{"fullUrl": f"https://ehr.example/fhir/{r['resourceType']}/r{i}",
                "resource": {"id": f"s{i}", "subject": {"reference": f"Patient/{pid}"}, **r}, "search": {"mode": "match"}}
               for i, r in enumerate(resources)]
    b = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if total is not None:
        b["total"] = total
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


@pytest.mark.parametrize("paging", [{"next_url": "https://ehr.example/fhir/Observation?patient=p1&page=2"},
                                    {"total": 4}])
def test_a_search_read_in_part_is_noted_and_its_first_lp_not_guessed(paging, table):
    """Item 16: with the first LP on a page not read, the later LP was read as the first."""
    d2 = ONSET + dt.timedelta(days=9)
    page = _searchset(_lab("csf-cytology", d2, system="urn:palsy:code", coded="negative"), _lab("805-2", d2, 12),
                      _lab("26446-5", d2, 3, unit="%"), **paging)
    whole = X.map_bundle(_bundle(_palsy(), *(e["resource"] for e in page["entry"])), table)
    assert whole.patient["csf_profile"] == "pleocytosis" and not whole.incomplete
    b = _bundle(_palsy())
    b["entry"].append({"resource": page})
    m = X.map_bundle(b, table)
    assert m.incomplete == ["Observation"] and any(n.startswith("incomplete record: the Observation search") for n in m.notes)
    assert "csf_profile" not in m.patient and "circulating_blasts" not in m.patient
    assert len(F.parse_patient(m.patient, "fhir").csf) == 1  # its result stands: it is a fact of the page read


@pytest.mark.parametrize("level,kept", [("normal", False), ("mass", True)])
def test_an_mri_read_from_a_partial_search_stands_only_when_nothing_could_outrank_it(level, kept, table):
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "MRI"},
              "effectiveDateTime": (ONSET + dt.timedelta(days=1)).isoformat(),
              "conclusionCode": [{"coding": [{"system": "urn:palsy:mri", "code": level}]}]}
    b = _bundle(_palsy())
    b["entry"].append({"resource": _searchset(report, next_url="https://ehr.example/fhir?_getpages=abc")})
    m = X.map_bundle(b, table)
    assert ("mri" in m.patient) is kept and m.incomplete == ["DiagnosticReport"]


def test_an_onset_known_only_to_its_month_places_no_test_in_that_month(table):
    """Item 17: an onset '2025-01' was read as 1 January, so an LP or MRI on 2 January counted as after onset."""
    palsy = _palsy()
    palsy["onsetDateTime"] = "2025-01"
    early, late = dt.date(2025, 1, 2), dt.date(2025, 2, 1)
    mri = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "MRI"},
           "effectiveDateTime": early.isoformat(), "conclusionCode": [{"coding": [{"system": "urn:palsy:mri",
                                                                                   "code": "mass"}]}]}
    m = X.map_bundle(_bundle(palsy, mri, _lab("csf-cytology", early, system="urn:palsy:code", coded="positive"),
                             _lab("csf-cytology", late, system="urn:palsy:code", coded="negative"),
                             _vinca(dt.date(2024, 12, 20))), table)
    assert "mri" not in m.patient and m.onset == "2025-01-01"
    assert [lp.result("cytology") for lp in F.parse_patient(m.patient, "fhir").csf] == ["negative"]
    assert sum("cannot be placed" in i["why"] for i in m.ignored) == 2
    # 20 December is within 28 days of 1 January but not of 31 January: the dose cannot be placed either way
    assert "recent_vincristine" not in m.patient and any("too imprecise" in i["why"] for i in m.ignored)
    assert any("known only to between 2025-01-01 and 2025-01-31" in n for n in m.notes)


def test_a_record_exported_whole_is_read(tmp_path):
    """A bundle over the 4 MiB of a patient file (a record exported whole: a review found one refused) is read;
    one over the FHIR limit is refused with a message naming the file and the limit, exit status 2."""
    from palsy.scripts.commands import common

    notes = [{"resourceType": "Observation", "status": "final", "code": {"text": f"nursing note {i}"},
              "valueString": "x" * 2000, "effectiveDateTime": ONSET.isoformat()} for i in range(3000)]
    path = tmp_path / "whole.json"
    path.write_text(json.dumps(_bundle(_palsy(), *notes)))
    assert path.stat().st_size > 5 * 1024 * 1024
    m = common.read_fhir_file(path)
    assert m.patient.get("laterality") == "unilateral"
    big = tmp_path / "too-big.json"
    with open(big, "wb") as fh:
        fh.truncate(common.FHIR_MAX_BYTES + 1)
    r = run_palsy("posterior", "--fhir", str(big))
    assert r.returncode == 2 and str(big) in r.stderr and "MiB" in r.stderr and "Traceback" not in r.stderr
