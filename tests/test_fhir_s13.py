"""FHIR in, after the s13 review (/work/lit/notes/s13/fhir.md): each finding reproduced on a minimal bundle,
and a fuzz test over generated bundles (dates at the calendar's ends, ties, duplicates): a valid record is
always mapped (never an internal error), a bad one refused with a clear FhirError."""

from __future__ import annotations

import copy
import datetime as dt
import random

import pytest

from palsy.model import fhir as X
from palsy.model import findings as F
from tests.test_fhir import ONSET, SCT, _bundle, _lab, _leukaemia, _local, _palsy, _vinca

pytestmark = pytest.mark.xdist_group("fhir")

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
LP_DAY = ONSET + dt.timedelta(days=1)
TODAY = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def table():
    return X.load_table()


def _cyto(when, coded="negative", **extra):
    r = _lab("csf-cytology", LP_DAY, system="urn:palsy:code", coded=coded, **extra)
    r["effectiveDateTime"] = when
    return r


def _at(lab, when):
    lab = dict(lab)
    lab["effectiveDateTime"] = when
    return lab


def _map(table, *res, **kw):
    return X.map_bundle(_bundle(*res, **kw), table, today=TODAY)


# --- 1, 8: never an internal error ----------------------------------------------------------------------------

@pytest.mark.parametrize("days", [(-1, 1), (0, 0), (-1, 1, 0)], ids=["either-side", "two-on-the-day", "daily"])
def test_blood_counts_equally_near_the_lp_are_all_read_not_compared(days, table):
    """#1: two counts as near the LP made sorting compare two resources (TypeError, exit 1 / HTTP 500)."""
    blasts = [_lab("26446-5", LP_DAY + dt.timedelta(days=d), 0, unit="%") for d in days]
    blasts += [_lab("30376-8", LP_DAY, 0, unit="/uL")] if 0 in days else []
    m = _map(table, _palsy(), _cyto(LP_DAY.isoformat()), *blasts)
    assert m.patient["circulating_blasts"] == "absent"


def test_blood_counts_equally_near_the_lp_that_disagree_leave_blasts_unknown(table):
    m = _map(table, _palsy(), _cyto(LP_DAY.isoformat()), _lab("26446-5", ONSET, 0, unit="%"),
             _lab("26446-5", LP_DAY + dt.timedelta(days=1), 12, unit="%"))
    assert "circulating_blasts" in m.not_found and any("circulating_blasts" in n for n in m.notes)


@pytest.mark.parametrize("onset", ["0001-01-01T00:00:00Z", "0001-01-01", "9999-12-31", "9999-12-31T23:59:59-12:00",
                                   "0001-01-01T00:00:00+14:00", "1753-01-01"])
def test_an_onset_at_the_calendars_ends_is_noted_not_a_crash(onset, table):
    """#8: 0001-01-01 (.NET's "no date") with an exposure underflowed the window (OverflowError, exit 1)."""
    palsy = _palsy()
    palsy["onsetDateTime"] = onset
    hsct = {"resourceType": "Procedure", "status": "completed", "performedDateTime": "2025-10-01",
            "code": {"coding": [{"system": "urn:palsy:code", "code": "allogeneic-hsct"}]}}
    m = _map(table, palsy, _vinca(ONSET), hsct)
    assert m.onset is None and "recent_vincristine" not in m.patient and "recent_hsct" not in m.patient
    assert any("not a real date" in n for n in m.notes)


@pytest.mark.parametrize("born", ["2027-05-01", "0001-01-01"])
def test_an_implausible_birth_date_sets_no_age_group(born, table):
    """#8: a birth date after the onset was read as a child."""
    m = _map(table, _palsy(), patient={"resourceType": "Patient", "id": "p1", "birthDate": born})
    assert "age_group" not in m.patient and any("not a real date" in n for n in m.notes)


def test_a_birth_date_after_the_onset_sets_no_age_group(table):
    m = _map(table, _palsy(), patient={"resourceType": "Patient", "id": "p1", "birthDate": "2025-06-01"})
    assert "age_group" not in m.patient and any("after the palsy's onset" in n for n in m.notes)


_DATES = ["0001-01-01", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z", "9999-12-31", "9999-12-31T23:59:59-12:00",
          "9999", "0001", "2025", "2025-01", "2025-01-15", "2025-01-15T23:30:00-05:00", "2025-01-16T04:30:00Z",
          "2025-01-16T04:30:00+00:00", "2025-01-14T10:00:00+14:00", "1900-01-01", "2024-12-20", "2025-01-16",
          "2025-01-17", None]
_INVALID = ["2025-02-29", "2025-13-01", "not a date", "2025-01-15T25:00:00Z"]  # refused by validation (exit 2)


def _random_bundle(rng: random.Random) -> dict:
    def when():
        return rng.choice(_INVALID) if rng.random() < 0.01 else rng.choice(_DATES)

    def dated(res, field):
        w = when()
        if w is not None:
            res[field] = w
        return res

    out = []
    for _ in range(rng.randint(0, 3)):
        p = dated(_palsy(side=rng.choice(["7771000", "24028007", "51440002", None])), "onsetDateTime")
        p.pop("onsetDateTime", None) if rng.random() < 0.2 else None
        if rng.random() < 0.3:
            p["recordedDate"] = rng.choice([d for d in _DATES if d])
        if rng.random() < 0.3:
            p["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": rng.choice(["active", "resolved", "inactive"])}]}
        out.append(p)
    for code in rng.sample(["C91.00", "C91.01", "C91.02", "C92.00"], rng.randint(0, 3)):
        out.append(dated(_leukaemia(code, rng.choice([None, "active", "remission"])), "recordedDate"))
    for _ in range(rng.randint(0, 4)):
        out.append(dated(_vinca(ONSET), "effectiveDateTime"))
    for _ in range(rng.randint(0, 8)):
        kind = rng.choice(["cyto", "flow", "wbc", "rbc", "prot", "blasts", "blasts#"])
        if kind in ("cyto", "flow"):
            r = _lab(f"csf-{'cytology' if kind == 'cyto' else 'flow'}", LP_DAY, system="urn:palsy:code",
                     coded=rng.choice(["positive", "negative"]))
        else:
            code, unit = {"wbc": ("805-2", "/uL"), "rbc": ("26454-9", "/uL"), "prot": ("2880-3", "mg/dL"),
                          "blasts": ("26446-5", "%"), "blasts#": ("30376-8", "/uL")}[kind]
            r = _lab(code, LP_DAY, rng.choice([0, 3, 60, 1e9]), unit=unit)
            if kind == "prot":
                r["referenceRange"] = [{"high": {"value": 45, "unit": "mg/dL", "code": "mg/dL",
                                                 "system": "http://unitsofmeasure.org"},
                                        "age": {"low": {"value": rng.choice([0, 18]), "unit": "a", "code": "a",
                                                        "system": "http://unitsofmeasure.org"}}}]
        r.pop("effectiveDateTime")
        if rng.random() < 0.9:
            dated(r, "effectiveDateTime")
        if rng.random() < 0.2:
            dated(r, "issued")
        out.append(r)
        if rng.random() < 0.3:
            out.append(copy.deepcopy(r))  # a duplicate
    for _ in range(rng.randint(0, 2)):
        out.append(dated(_local(rng.choice(["vesicles", "otalgia", "remission"]),
                                rng.choice(["present", "absent", "in_remission_off_treatment"])), "effectiveDateTime"))
    if rng.random() < 0.3:
        out.append(dated({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "MRI"},
                          "conclusionCode": [{"coding": [{"system": "urn:palsy:mri", "code": "normal"}]}]}, "issued"))
    rng.shuffle(out)
    born = rng.choice(["1990-06-01", "2025-06-01", "0001-01-01", "9999-12-31", "2010", None])
    patient = {"resourceType": "Patient", "id": "p1", **({"birthDate": born} if born else {})}
    return _bundle(*out, patient=patient)


def test_fuzz_generated_bundles_are_mapped_or_refused_clearly_never_an_internal_error(table):
    """#1, #8 as a class: dates at the calendar's ends (with offsets that cross them), ties and duplicates."""
    rng = random.Random(13)
    mapped = refused = 0
    for i in range(400):
        bundle = _random_bundle(rng)
        try:
            m = X.map_bundle(bundle, table, today=TODAY, source=f"fuzz {i}")
        except X.FhirError as exc:
            assert exc.args, exc  # a clear message (the CLI's exit 2, the service's 422)
            refused += 1
            continue
        F.parse_patient(m.patient, f"fuzz {i}", schema=table.schema)
        mapped += 1
    assert mapped > 150 and refused > 0


# --- 2: the episode is the current palsy -----------------------------------------------------------------------

def test_an_old_palsy_sets_neither_the_side_nor_the_onset_nor_the_lps(table):
    """#2: a 2023 right-sided encounter diagnosis (no clinicalStatus) beside this left palsy: the onset moved
    back to 2023, the palsy became bilateral and an old routine LP counted."""
    old = _palsy(onset=dt.date(2023, 6, 1), side="24028007")
    old["category"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                    "code": "encounter-diagnosis"}]}]
    routine_lp = _cyto("2024-11-04")
    m = _map(table, old, _palsy(), routine_lp, _cyto(LP_DAY.isoformat()), _vinca(ONSET - dt.timedelta(days=7)))
    assert m.onset == ONSET.isoformat() and m.patient["laterality"] == "unilateral"
    assert len(F.parse_patient(m.patient, "fhir").csf) == 1 and m.patient["recent_vincristine"] == "yes"
    assert any("earlier facial palsy" in i["why"] and "not this episode" in i["why"] for i in m.ignored)
    assert any(n.startswith("set aside:") for n in m.notes)


def test_a_second_side_within_the_episode_makes_it_bilateral(table):
    m = _map(table, _palsy(), _palsy(onset=ONSET + dt.timedelta(days=4), side="24028007"))
    assert m.onset == ONSET.isoformat() and m.patient["laterality"] == "bilateral"


# --- 3: instants, not local dates ------------------------------------------------------------------------------

def test_one_lp_stamped_in_two_zones_is_one_lp_with_its_red_cells(table):
    """#3: cytology at 21:30-05:00 and the cell counts at 02:30Z next day (the same instant) became two LPs."""
    local, utc = "2025-01-16T21:30:00-05:00", "2025-01-17T02:30:00Z"
    m = _map(table, _palsy(), _cyto(local, coded="positive"), _at(_lab("26454-9", LP_DAY, 2500), utc),
             _at(_lab("805-2", LP_DAY, 40), utc))
    lps = F.parse_patient(m.patient, "fhir").csf
    assert len(lps) == 1 and lps[0].traumatic == "yes" and m.patient["csf_profile"] == "pleocytosis"
    assert not any("left out" in n for n in m.notes)


def test_an_lp_ninety_minutes_after_an_onset_in_another_zone_is_after_it(table):
    palsy = _palsy()
    palsy["onsetDateTime"] = "2025-01-16T03:00:00Z"
    m = _map(table, palsy, _cyto("2025-01-15T23:30:00-05:00"))
    assert len(F.parse_patient(m.patient, "fhir").csf) == 1
    m = _map(table, palsy, _cyto("2025-01-15T21:30:00-05:00"))  # 30 minutes before
    assert not F.parse_patient(m.patient, "fhir").csf and any("before the palsy" in i["why"] for i in m.ignored)


def test_a_dose_after_the_onset_on_the_same_day_is_not_before_it(table):
    palsy = _palsy()
    palsy["onsetDateTime"] = "2025-01-15T08:00:00+01:00"
    dose = _vinca(ONSET)
    dose["effectiveDateTime"] = "2025-01-15T10:00:00+01:00"
    m = _map(table, palsy, dose)
    assert "recent_vincristine" not in m.patient and any("after the palsy's onset" in i["why"] for i in m.ignored)


def test_issued_is_not_the_collection_time(table):
    """#3: a cytology with only issued (the report, two days later) became a second LP."""
    late = _cyto(LP_DAY.isoformat())
    late.pop("effectiveDateTime")
    late["issued"] = (LP_DAY + dt.timedelta(days=2)).isoformat() + "T09:00:00Z"
    flow = _lab("csf-flow", LP_DAY, system="urn:palsy:code", coded="negative")
    m = _map(table, _palsy(), flow, late)
    lps = F.parse_patient(m.patient, "fhir").csf
    assert len(lps) == 1 and lps[0].result("cytology") == "negative"
    assert any("only when it was reported" in n for n in m.notes)
    blasts = _lab("26446-5", LP_DAY, 5, unit="%")
    blasts.pop("effectiveDateTime")
    blasts["issued"] = LP_DAY.isoformat() + "T09:00:00Z"
    m = _map(table, _palsy(), flow, blasts)
    assert "circulating_blasts" not in m.patient and any("issued is when" in i["why"] for i in m.ignored)


# --- 4: remission by recency and clinical status ----------------------------------------------------------------

def test_a_current_in_remission_code_beats_an_older_not_in_remission_one(table):
    """#4: C91.00 at induction (2024, no clinicalStatus) overrode C91.01 active now."""
    m = _map(table, _palsy(), _leukaemia("C91.00", recordedDate="2024-01-05"),
             _leukaemia("C91.01", "active", recordedDate="2025-01-10"))
    assert "remission" not in m.patient and any("superseded" in i["why"] for i in m.ignored)
    assert any("enter it" in n for n in m.notes)


def test_a_newer_relapse_beats_an_older_remission(table):
    m = _map(table, _palsy(), _leukaemia("C91.01", "active", recordedDate="2024-01-05"),
             _leukaemia("C91.02", "active", recordedDate="2025-01-10"))
    assert m.patient["remission"] == "not_in_remission"


def test_on_the_same_day_a_current_status_beats_none_and_equals_conflict(table):
    m = _map(table, _palsy(), _leukaemia("C91.00", recordedDate="2025-01-10"),
             _leukaemia("C91.01", "active", recordedDate="2025-01-10"))
    assert "remission" not in m.patient and any("superseded" in i["why"] for i in m.ignored)
    m = _map(table, _palsy(), _leukaemia("C91.00", "active", recordedDate="2025-01-10"),
             _leukaemia("C91.01", "active", recordedDate="2025-01-10"))
    assert "remission" not in m.patient and any("more than one thing" in n for n in m.notes)


def test_a_leukaemia_in_remission_by_its_clinical_status_outranks_an_older_code(table):
    m = _map(table, _palsy(), _leukaemia("C91.00", recordedDate="2024-01-05"),
             _leukaemia("C91.00", "remission", recordedDate="2025-01-10"))
    assert "remission" not in m.patient and any("superseded" in i["why"] for i in m.ignored)


# --- 5: protein's reference range by age; the laboratory's flag stands ------------------------------------------

def _range(low_age, high_age, high):
    rr = {"high": {"value": high, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "age": {}}
    for k, v in (("low", low_age), ("high", high_age)):
        if v is not None:
            rr["age"][k] = {"value": v, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
    return rr


@pytest.mark.parametrize("interp,expect", [(None, "protein_only"), ("H", "protein_only"), ("HH", "protein_only")])
def test_the_protein_range_for_the_patients_age_is_used(interp, expect, table):
    """#5: an adult's 95 mg/dL against a neonate's 20-170 first (adult's 15-45 second) read as normal."""
    prot = _lab("2880-3", LP_DAY, 95, unit="mg/dL", referenceRange=[_range(0, 0.08, 170), _range(18, None, 45)])
    if interp:
        prot["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                               "code": interp}]}]
    m = _map(table, _palsy(), _cyto(LP_DAY.isoformat()), _lab("805-2", LP_DAY, 2), prot)
    assert m.patient["csf_profile"] == expect


def test_the_laboratorys_flag_is_not_overridden_by_a_range(table):
    prot = _lab("2880-3", LP_DAY, 95, unit="mg/dL", referenceRange=[_range(None, None, 170)],
                interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                             "code": "H"}]}])
    m = _map(table, _palsy(), _cyto(LP_DAY.isoformat()), _lab("805-2", LP_DAY, 2), prot)
    assert m.patient["csf_profile"] == "protein_only" and any("laboratory's flag is used" in n for n in m.notes)


def test_age_ranges_without_a_birth_date_leave_the_protein_unknown(table):
    prot = _lab("2880-3", LP_DAY, 95, unit="mg/dL", referenceRange=[_range(0, 0.08, 170), _range(18, None, 45)])
    m = _map(table, _palsy(), _cyto(LP_DAY.isoformat()), _lab("805-2", LP_DAY, 2), prot,
             patient={"resourceType": "Patient", "id": "p1"})
    assert "csf_profile" not in m.patient


# --- 6: palsy's own exam findings are this episode's ------------------------------------------------------------

@pytest.mark.parametrize("days,read", [(-400, False), (-1, False), (0, True), (30, True), (31, False)])
def test_an_own_exam_finding_counts_only_in_this_episode(days, read, table):
    """#6: vesicles of a shingles two years before were read as this palsy's."""
    m = _map(table, _palsy(), _local("vesicles", "present",
                                     effectiveDateTime=(ONSET + dt.timedelta(days=days)).isoformat()))
    assert (m.patient.get("vesicles") == "present") is read
    if not read:
        assert "vesicles" in m.not_found and any(i["code"].endswith("vesicles") for i in m.ignored)


def test_an_undated_own_exam_finding_is_not_used(table):
    res = _local("vesicles", "present")
    res.pop("effectiveDateTime")
    m = _map(table, _palsy(), res)
    assert "vesicles" not in m.patient and any("undated" in i["why"] for i in m.ignored)


# --- 7, 9: doses after the onset, an onset the record only bounds, orders dated by their doses -------------------

def test_a_palsy_known_only_by_its_recorded_date_bounds_the_onset(table):
    """#7: with only recordedDate, a dose after it (so after the onset) read as recent vincristine."""
    palsy = _palsy()
    palsy.pop("onsetDateTime")
    palsy["recordedDate"] = "2025-11-22"
    m = _map(table, palsy, _vinca(dt.date(2025, 12, 22)), _cyto("2025-11-25"))
    assert "recent_vincristine" not in m.patient and m.onset is None
    assert any("after the palsy's onset" in i["why"] for i in m.ignored)
    assert len(F.parse_patient(m.patient, "fhir").csf) == 1  # after the day the record bounds the onset by
    m = _map(table, palsy, _vinca(dt.date(2025, 11, 10)))
    assert "recent_vincristine" not in m.patient and any("may have come after" in i["why"] for i in m.ignored)


def test_an_onset_age_is_read_with_the_birth_date(table):
    palsy = _palsy()
    palsy.pop("onsetDateTime")
    palsy["onsetAge"] = {"value": 34, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
    m = _map(table, palsy, _vinca(dt.date(2025, 1, 10)))
    assert "recent_vincristine" not in m.patient and any("onsetAge" in n for n in m.notes)


def test_an_order_is_dated_by_its_dose_timing_not_by_authored_on(table):
    """#9: a vincristine order written 20 days before onset whose dose was given 2 days after it."""
    order = {"resourceType": "MedicationRequest", "status": "completed", "intent": "order",
             "authoredOn": (ONSET - dt.timedelta(days=20)).isoformat(),
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "11202"}]},
             "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {
                 "start": (ONSET + dt.timedelta(days=2)).isoformat(), "end": (ONSET + dt.timedelta(days=2)).isoformat()}}}}]}
    m = _map(table, _palsy(), order)
    assert "recent_vincristine" not in m.patient and any("after the palsy's onset" in i["why"] for i in m.ignored)
    order.pop("dosageInstruction")
    m = _map(table, _palsy(), order)
    assert "recent_vincristine" not in m.patient and any("authoredOn is when" in i["why"] for i in m.ignored)


# --- 10: a lineage Observation must say present -----------------------------------------------------------------

@pytest.mark.parametrize("value,read", [
    ({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260415000", "display": "Not detected"}]}}, False),
    ({"dataAbsentReason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                       "code": "unknown"}]}}, False),
    ({"valueString": "negative"}, False),
    ({"valueBoolean": True}, True),
    ({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "10828004"}]}}, True),
    ({}, True)])
def test_a_lineage_observation_is_read_only_when_its_value_says_present(value, read, table):
    obs = {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": SCT, "code": "277571004"}]},
           "effectiveDateTime": ONSET.isoformat(), **value}
    m = _map(table, _palsy(), obs)
    assert (m.patient.get("lineage") == "B-ALL") is read


# --- 11, 12 ------------------------------------------------------------------------------------------------------

def test_a_hosts_case_does_not_make_another_server(table):
    b = _bundle(_palsy(), _local("vesicles", "present", subject={"reference": "https://EHR.Example/fhir/Patient/p1"}))
    b["entry"][0]["fullUrl"] = "https://ehr.example/fhir/Patient/p1"
    assert X.map_bundle(b, table, today=TODAY).patient["vesicles"] == "present"


def test_an_administration_whose_time_is_absent_is_listed_not_refused(table):
    dose = _vinca(ONSET)
    dose.pop("effectiveDateTime")
    dose["_effectiveDateTime"] = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                                 "valueCode": "unknown"}]}
    m = _map(table, _palsy(), dose)
    assert "recent_vincristine" not in m.patient and any("time" in i["why"] for i in m.ignored)


def test_an_lp_whose_results_are_not_coded_is_not_called_pending(table):
    cyto = _cyto(LP_DAY.isoformat())
    cyto.pop("valueCodeableConcept")
    cyto["valueString"] = "Malignant cells present"
    m = _map(table, _palsy(), cyto)
    assert not any("pending" in n for n in m.notes) and any("cannot be read as positive or negative" in n for n in m.notes)


def test_the_commands_and_the_services_mapping_agree_on_a_reviewed_bundle(table):
    """The CLI and the service both call map_bundle; the zone and the episode come from the record alone."""
    b = _bundle(_palsy(), _cyto("2025-01-16T21:30:00-05:00"), _at(_lab("26454-9", LP_DAY, 2500), "2025-01-17T02:30:00Z"))
    assert X.map_bundle(copy.deepcopy(b), table, today=TODAY).patient == X.map_bundle(b, table,
                                                                                   today=dt.date(2026, 6, 1)).patient

