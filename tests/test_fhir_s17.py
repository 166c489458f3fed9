"""FHIR in, session 17: the gaps the s15 reviews left (/work/lit/notes/s15/fhir.md, fhir2.md; closing.md "FHIR, not
done"): linked Patients (a merged record), the palsy's side when one of its records gives none, a flow cytometry of
0.00 % flagged negative, a record that crosses a daylight-saving change, and the leukaemia diagnosed after the palsy
beside an undated Condition. Each on a minimal bundle."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from palsy.model import fhir as X
from palsy.model import fhir_dates as FD
from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from palsy.model.file_models import base
from palsy.model.file_models import care_files as C
from tests.conftest import REPO
from tests.test_fhir import ONSET, _bundle, _lab, _leukaemia, _palsy, _vinca

pytestmark = pytest.mark.xdist_group("fhir")

LP_DAY = ONSET + dt.timedelta(days=1)
TODAY = dt.date(2026, 6, 1)
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.fixture(scope="module")
def table():
    return X.load_table()


def _csf(method: str, day: dt.date, result: str | None = None, **extra) -> dict:
    return _lab(f"csf-{method}", day, system="urn:palsy:code", coded=result, **extra)


def _lps(m: X.FhirMapping) -> list[tuple[str | None, str | None]]:
    return [(lp.result("cytology"), lp.result("flow")) for lp in F.parse_patient(m.patient, "fhir").csf]


# --- 1: linked Patients (a merged record) ----------------------------------------------------------------------

def _patient(pid: str, *links: tuple[str, str], **extra) -> dict:
    r = {"resourceType": "Patient", "id": pid, **extra}
    if links:
        r["link"] = [{"other": {"reference": f"Patient/{other}"}, "type": kind} for kind, other in links]
    return r


def _two_patients(new: dict, old: dict, *res: dict, old_first: bool = False) -> dict:
    """A bundle of the Patients ``new`` and ``old`` (``old`` first when asked) and ``res``, each resource's subject the
    one it names (the new Patient's by default)."""
    b = _bundle(*res, patient=new)
    entry = {"fullUrl": f"Patient/{old['id']}", "resource": old}
    b["entry"].insert(0 if old_first else 1, entry)
    return b


def _of(r: dict, pid: str) -> dict:
    return {**r, "subject": {"reference": f"Patient/{pid}"}}


@pytest.mark.parametrize("links", ["both", "replaces only", "replaced-by only", "active false only"])
@pytest.mark.parametrize("old_first", [False, True])
def test_patients_joined_by_a_link_are_one_patient_named_by_the_surviving_record(links, old_first, table):
    """s15 #14 (p18): a merged record (the new Patient replaces the old one) was refused as "2 different Patient
    resources". Joined by a link in either direction, they are one patient: the resources of either are read, and the
    record is the surviving one (not replaced-by another, not active false), said."""
    new = _patient("new", *([("replaces", "old")] if links in ("both", "replaces only") else []), birthDate="1990-06-01")
    old = _patient("old", *([("replaced-by", "new")] if links in ("both", "replaced-by only") else []))
    if links == "active false only":
        new["link"] = [{"other": {"reference": "Patient/old"}, "type": "seealso"}]
    if links in ("both", "replaced-by only", "active false only"):
        old["active"] = False
    b = _two_patients(new, old, _palsy(), _of(_vinca(ONSET - dt.timedelta(days=7)), "old"),
                      _of(_csf("cytology", LP_DAY, "positive"), "old"), old_first=old_first)
    m = X.map_bundle(b, table, today=TODAY)
    assert m.record_id == "new" and m.record_ids == ["new", "old"] and m.patient["id"] == "Patient/new"
    assert m.patient["recent_vincristine"] == "yes" and _lps(m) == [("positive", None)]
    assert m.patient["age_group"] == "adult"  # the birth date of the record that gives one
    (said,) = [n for n in m.notes if "linked Patient records" in n]
    assert "Patient/new (the surviving record" in said and "resources referring to any of them" in said


def test_linked_patients_neither_marked_surviving_are_named_by_the_first_and_said(table):
    """Joined by seealso, both active: one patient, named by the first Patient in the bundle, and the note says that no
    record is marked as the surviving one (never a guess of which)."""
    b = _two_patients(_patient("a", ("seealso", "b")), _patient("b"), _palsy(), _of(_csf("flow", LP_DAY, "negative"), "b"))
    m = X.map_bundle(b, table, today=TODAY)
    assert m.record_id == "a" and set(m.record_ids) == {"a", "b"} and _lps(m) == [(None, "negative")]
    assert any("no one of them is marked as the surviving record" in n and "Patient/a" in n for n in m.notes)


def test_a_link_to_a_patient_not_in_the_bundle_makes_its_resources_this_patients(table):
    """The survivor alone in the bundle (as a prefetch of Patient/<id> returns it), with resources still filed under
    the id it replaced: they are this patient's; the hook may name either id (record_ids)."""
    b = _bundle(_palsy(), _of(_csf("cytology", LP_DAY, "negative"), "old"), patient=_patient("new", ("replaces", "old")))
    m = X.map_bundle(b, table, today=TODAY)
    assert m.record_id == "new" and m.record_ids == ["new", "old"] and _lps(m) == [("negative", None)]
    # the replaced record alone: its survivor names the record, and both ids are the patient's
    b = _bundle(_of(_palsy(), "new"), patient=_patient("old", ("replaced-by", "new"), active=False))
    m = X.map_bundle(b, table, today=TODAY)
    assert m.record_id == "new" and m.record_ids == ["new", "old"] and m.patient["id"] == "Patient/new"


@pytest.mark.parametrize("case", ["no link", "a third not joined", "a link to a related person", "another server"])
def test_patients_not_joined_by_a_link_stay_refused(case, table):
    """Two Patients that no link joins are two patients, whatever else the bundle holds: refused (422, exit 2)."""
    a, b_ = _patient("a"), _patient("b")
    if case == "a third not joined":
        a["link"] = [{"other": {"reference": "Patient/b"}, "type": "seealso"}]
    elif case == "a link to a related person":
        a["link"] = [{"other": {"reference": "RelatedPerson/b"}, "type": "seealso"}]
    elif case == "another server":
        a["link"] = [{"other": {"reference": "https://other.example/fhir/Patient/b"}, "type": "seealso"}]
    bundle = _two_patients(a, b_, _palsy())
    if case == "a third not joined":
        bundle["entry"].append({"fullUrl": "Patient/c", "resource": _patient("c")})
    elif case == "another server":
        for e in bundle["entry"]:
            e["fullUrl"] = "https://ehr.example/fhir/" + e["fullUrl"]
    with pytest.raises(X.FhirError, match="different Patient resources"):
        X.map_bundle(bundle, table, today=TODAY)


def test_a_resource_of_a_patient_no_link_names_is_still_refused(table):
    """Linking opens the record to the linked ids only: another patient's resource is refused as before."""
    b = _bundle(_palsy(), _of(_csf("cytology", LP_DAY, "positive"), "stranger"), patient=_patient("new", ("replaces", "old")))
    with pytest.raises(X.FhirError, match="is another patient"):
        X.map_bundle(b, table, today=TODAY)


@pytest.mark.parametrize("old_birth, age_group", [("1990-06-01", "adult"), ("1990", "adult"), (None, "adult"),
                                                  ("2015-06-01", "adult")])
def test_a_merged_records_birth_date_is_the_surviving_records(old_birth, age_group, table):
    """The same date, a year that holds it, or none: read. Two dates that disagree: the surviving record's, said with
    both (s17 third review #7: R4 link-type, the replaced record "must no longer be used"; no date had been read)."""
    old = _patient("old", ("replaced-by", "new"), active=False, **({"birthDate": old_birth} if old_birth else {}))
    b = _two_patients(_patient("new", birthDate="1990-06-01"), old, _palsy())
    m = X.map_bundle(b, table, today=TODAY)
    assert m.patient.get("age_group") == age_group
    said = [n for n in m.notes if "different birth dates" in n]
    assert bool(said) == (old_birth == "2015-06-01")
    if said:
        assert "Patient/new 1990-06-01" in said[0] and "Patient/old 2015-06-01" in said[0]
        assert "the surviving record's, Patient/new, is read" in said[0]


def test_one_patient_without_links_is_read_as_before(table):
    m = X.map_bundle(_bundle(_palsy()), table, today=TODAY)
    assert m.record_id == "p1" and m.record_ids == ["p1"] and not any("linked" in n for n in m.notes)


# --- 2: the side of the palsy when one of its records gives none -----------------------------------------------

def _sideless(onset: dt.date | None = None, recorded: dt.date | None = None) -> dict:
    r = _palsy(side=None)
    r.pop("onsetDateTime")
    if onset:
        r["onsetDateTime"] = onset.isoformat()
    if recorded:
        r["recordedDate"] = recorded.isoformat()
    return r


@pytest.mark.parametrize("other, laterality", [
    (_sideless(onset=ONSET), "unilateral"),                                          # the same onset day
    (_sideless(recorded=ONSET + dt.timedelta(days=14)), None),                       # p10, s07: the other side?
    (_sideless(recorded=ONSET), "unilateral"),                                       # recorded on the onset's day
    (_sideless(onset=ONSET + dt.timedelta(days=4)), None),                           # an onset of its own: the other side?
    (_sideless(recorded=ONSET + dt.timedelta(days=40)), None),                       # beyond the episode's 30 days
    (_sideless(onset=ONSET, recorded=ONSET + dt.timedelta(days=3)), "unilateral"),   # its own onset is the same day
])
def test_a_record_of_the_palsy_without_a_side_keeps_the_side_only_when_it_is_the_same_palsy(other, laterality, table):
    """s15 #7 (p10): a follow-up encounter diagnosis without a bodySite made the side unknown with no word of it. A
    side-less record dated to the same day as the sided one is the same palsy (said); one with an onset of its own on
    another day, or recorded days later (s17 third review #6: a second side recorded a week later had been read as
    the same palsy), may be the other side: unknown, said with what to enter."""
    m = X.map_bundle(_bundle(_palsy(), other, _vinca(ONSET - dt.timedelta(days=7))), table, today=TODAY)
    assert m.patient.get("laterality") == laterality
    assert m.onset == ONSET.isoformat() and m.patient["recent_vincristine"] == "yes"
    notes = [n for n in m.notes if n.startswith("laterality:")]
    if laterality:
        assert len(notes) == 1 and "gives no side: read as the same palsy as" in notes[0], m.notes
    else:
        assert len(notes) == 1 and "it may restate that palsy or record the other side; left unknown" in notes[0]


@pytest.mark.parametrize("same_encounter", [False, True])
def test_a_sideless_dated_record_takes_the_side_of_a_later_record_only_from_the_same_encounter(same_encounter, table):
    """The other way round: the problem list's palsy is dated and gives no side; an encounter diagnosis two days later,
    with no onset of its own, gives it. Made in the same encounter, they are one palsy; else the side-less one may be
    the other side (s17 third review #6)."""
    encdx = _palsy()
    encdx.pop("onsetDateTime")
    encdx["recordedDate"] = (ONSET + dt.timedelta(days=2)).isoformat()
    first = _sideless(onset=ONSET)
    if same_encounter:
        first["encounter"] = encdx["encounter"] = {"reference": "Encounter/e1"}
    m = X.map_bundle(_bundle(first, encdx), table, today=TODAY)
    assert m.patient.get("laterality") == ("unilateral" if same_encounter else None)


def test_two_sides_stay_bilateral_and_a_record_before_the_onset_leaves_it_unknown(table):
    right = _palsy(onset=ONSET + dt.timedelta(days=4), side="24028007")
    m = X.map_bundle(_bundle(_palsy(), right, _sideless(onset=ONSET + dt.timedelta(days=9))), table, today=TODAY)
    assert m.patient.get("laterality") == "bilateral"
    # a side-less record made before the dated onset was an earlier palsy's, or the other side's
    m = X.map_bundle(_bundle(_palsy(), _sideless(recorded=ONSET - dt.timedelta(days=3))), table, today=TODAY)
    assert "laterality" not in m.patient


# --- 3: a flow cytometry of exactly 0 flagged negative -----------------------------------------------------------

def _flow(value: dict, *flags: str | list[str], method: str = "flow") -> dict:
    r = {**_csf(method, LP_DAY), **value}
    r["interpretation"] = [{"coding": [{"system": V3, "code": f} for f in ([fl] if isinstance(fl, str) else fl)]}
                           for fl in flags]
    if not flags:
        r.pop("interpretation")
    return r


ZERO = {"valueQuantity": {"value": 0, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}


@pytest.mark.parametrize("value, flags, read", [
    (ZERO, ("NEG",), "negative"),
    (ZERO, ("ND",), "negative"),
    (ZERO, ("NEG", "N"), "negative"),                        # a normal flag beside the negative one
    ({"valueQuantity": {"value": 0.0, "unit": "%"}}, ("NEG",), "negative"),
    ({"valueInteger": 0}, ("NEG",), "negative"),
    (ZERO, (["NEG", "H"],), "negative"),                     # one interpretation, two codings: one read
    (ZERO, ("POS",), None),
    (ZERO, ("H",), None),                                    # a flag the table does not read may say otherwise
    (ZERO, ("NEG", "H"), None),
    (ZERO, ("NEG", "A"), None),                              # abnormal beside negative: they disagree
    (ZERO, ("N",), None),                                    # a normality flag alone is no result
    (ZERO, (), None),
    ({"valueQuantity": {"value": 0.01, "unit": "%"}}, ("NEG",), None),
    ({"valueQuantity": {"value": 0.8, "unit": "%"}}, ("NEG",), None),
    ({"valueQuantity": {"value": 0, "comparator": "<", "unit": "%"}}, ("NEG",), None),
    ({"valueString": "0"}, ("NEG",), None),
])
def test_a_flow_of_exactly_zero_flagged_negative_reads_negative_and_nothing_else_does(value, flags, read, table):
    """s15 fhir2 N: the MRD-style "0.00 %" flagged NEG was unknown (a number is never read from its interpretation
    alone). The table's zero_read_negative reads a 0 beside an interpretation that says negative; any other number, a
    0 flagged otherwise or not flagged stays unread, and the card says why."""
    m = X.map_bundle(_bundle(_palsy(), _csf("cytology", LP_DAY, "negative"), _flow(value, *flags)), table, today=TODAY)
    assert _lps(m) == [("negative", read)]
    unread = [n for n in m.notes if "its flow result cannot be read" in n]
    assert bool(unread) == (read is None), m.notes
    if read is None and value is ZERO and "A" not in flags:  # (NEG beside A: "its interpretation's codes say ...")
        assert "its value is 0 with" in unread[0] and "zero_read_negative" in unread[0]


def test_the_zero_rule_is_the_tables_only_for_the_measures_it_names(table, tmp_path):
    """A cytology of 0 flagged NEG is not read (the table names the flow only), and a table without the block reads no
    0: the rule is the table's, not the code's."""
    m = X.map_bundle(_bundle(_palsy(), _flow(ZERO, "NEG", method="cytology")), table, today=TODAY)
    assert _lps(m) == []
    raw = Y.load(REPO / "priors" / "fhir_map.yaml")
    raw.pop("zero_read_negative")
    (tmp_path / "fhir_map.yaml").write_text(json.dumps(raw))
    bare = X.load_table(tmp_path)
    assert bare.zero_negative == frozenset()
    m = X.map_bundle(_bundle(_palsy(), _csf("cytology", LP_DAY, "negative"), _flow(ZERO, "NEG")), bare, today=TODAY)
    assert _lps(m) == [("negative", None)]


@pytest.mark.parametrize("block, words", [
    ({"measures": ["csf_wbc"], "source": "x"}, "zero_read_negative"),
    ({"measures": [], "source": "x"}, "zero_read_negative"),
    ({"measures": ["csf_flow"]}, "zero_read_negative"),
])
def test_a_bad_zero_rule_is_refused_by_the_table_and_its_file_model(block, words, tmp_path):
    raw = Y.load(REPO / "priors" / "fhir_map.yaml")
    raw["zero_read_negative"] = block
    (tmp_path / "fhir_map.yaml").write_text(json.dumps(raw))
    with pytest.raises(F.InputError, match=words):
        X.load_table(tmp_path)
    assert any(words in p for p in base.check(C.FhirMapFile, raw, "fhir_map.yaml"))
    assert base.check(C.FhirMapFile, Y.load(REPO / "priors" / "fhir_map.yaml"), "fhir_map.yaml") == []


# --- 4: a record that crosses a daylight-saving change -----------------------------------------------------------

def test_a_stamp_is_on_the_day_written_in_it_after_a_daylight_saving_change(table):
    """p16: three stamps at -05:00 before the US change of 2026-03-08 made -05:00 the record's zone, and an LP stamped
    2026-03-09T00:30-04:00 was placed on 03-08, apart from its cell count dated 03-09: the profile was lost."""
    palsy = _palsy(onset=dt.date(2026, 3, 7))
    palsy["onsetDateTime"] = "2026-03-07T20:00:00-05:00"
    lp = dt.date(2026, 3, 9)
    cyto, flow = _csf("cytology", lp, "positive"), _csf("flow", lp, "positive")
    for r in (cyto, flow):
        r["effectiveDateTime"] = "2026-03-09T00:30:00-04:00"
    blood = [{**_lab("26446-5", dt.date(2026, 3, d), 0, unit="%"), "effectiveDateTime": f"2026-03-0{d}T08:00:00-05:00"}
             for d in (5, 6)]
    b = _bundle(palsy, cyto, flow, _lab("805-2", lp, 60), *blood)
    assert X.record_zone(b) == -300
    m = X.map_bundle(b, table, today=TODAY)
    assert _lps(m) == [("positive", "positive")] and m.patient["csf_profile"] == "pleocytosis"


def test_a_utc_stamp_takes_the_offset_of_the_records_stamps_nearest_in_time(table):
    """A UTC stamp (a reference laboratory's clock) follows the record's offset at its time: after the change, -04:00,
    though the record's commonest offset is the winter's -05:00. The LP on the onset's day (00:30-04:00, and its flow
    stamped 04:30Z, the same hour) is on that day, not before it."""
    onset = dt.date(2026, 4, 15)
    winter = [{**_vinca(dt.date(2026, 1, d)), "effectiveDateTime": f"2026-01-{d:02d}T10:00:00-05:00"} for d in (5, 12, 19)]
    cyto = {**_csf("cytology", onset, "positive"), "effectiveDateTime": "2026-04-15T00:30:00-04:00"}
    flow = {**_csf("flow", onset, "positive"), "effectiveDateTime": "2026-04-15T04:30:00Z"}
    b = _bundle(_palsy(onset=onset), *winter, cyto, flow)
    assert X.record_zone(b) == -300
    zones = FD.Zones.of(b)
    at = FD.parse_when("2026-04-15T04:30:00Z").at
    assert zones.at(at) == -240 and FD.parse_when("2026-04-15T04:30:00Z", zones).lo == onset
    assert FD.parse_when("2026-01-12T04:30:00Z", zones).lo == dt.date(2026, 1, 11)  # the winter's -05:00
    m = X.map_bundle(b, table, today=TODAY)
    assert _lps(m) == [("positive", "positive")]


def test_zones_equally_near_go_to_the_records_commonest_offset():
    stamps = [(1000, -300), (1000, -300), (3000, -240)]
    zones = FD.Zones(stamps)
    assert zones.at(2000) == -300 and zones.at(2900) == -240 and zones.at(0) == -300
    assert FD.Zones().at(2000) == 0 and FD.Zones([(5, 0)]).at(0) == 0  # UTC stamps set no zone


def test_the_same_tap_stamped_in_a_zone_and_in_utc_is_still_one_lp(table):
    """The s13 case holds: a cytology at 21:30-05:00 and its counts at 02:30Z the next day are one LP."""
    counts = {**_lab("26454-9", LP_DAY, 2500), "effectiveDateTime": "2025-01-17T02:30:00Z"}
    cyto = {**_csf("cytology", LP_DAY, "positive"), "effectiveDateTime": "2025-01-16T21:30:00-05:00"}
    m = X.map_bundle(_bundle(_palsy(), cyto, counts), table, today=TODAY)
    lps = F.parse_patient(m.patient, "fhir").csf
    assert len(lps) == 1 and lps[0].traumatic == "yes"


# --- 5: the leukaemia diagnosed after the palsy, beside a Condition without an onset ---------------------------

@pytest.mark.parametrize("undated, said", [
    ({"recordedDate": (ONSET + dt.timedelta(days=2)).isoformat()}, True),   # n15: recorded after the palsy too
    ({"recordedDate": (ONSET - dt.timedelta(days=90)).isoformat()}, False),  # known before the palsy
    ({"recordedDate": ONSET.isoformat()}, False),                            # on the palsy's day: may be before it
    ({}, False),                                                             # no date at all: may be the old diagnosis
])
def test_an_undated_leukaemia_condition_bounds_the_diagnosis_by_its_recorded_date(undated, said, table):
    """s15 fhir2 N (n15): the note "diagnosed after the palsy" was lost as soon as any leukaemia Condition had no onset.
    Its recordedDate bounds its diagnosis from above: recorded after the palsy, it does not unsettle the dated one;
    recorded on or before the palsy's day, or not dated at all, it may be the earlier diagnosis: no note."""
    after = _leukaemia("C91.00", "active", onsetDateTime=(ONSET + dt.timedelta(days=2)).isoformat())
    encdx = _leukaemia("C91.00", **undated)
    m = X.map_bundle(_bundle(_palsy(), after, encdx), table, today=TODAY)
    notes = [n for n in m.notes if "outside the model's population" in n]
    assert bool(notes) == said, m.notes
    if said:
        assert "Condition/r2 gives no onset, only its recordedDate (" in notes[0]


def test_no_note_when_no_leukaemia_condition_gives_an_onset(table):
    """Recorded after the palsy only bounds a diagnosis from above: without any onset, nothing dates it after."""
    encdx = _leukaemia("C91.00", recordedDate=(ONSET + dt.timedelta(days=2)).isoformat())
    m = X.map_bundle(_bundle(_palsy(), encdx), table, today=TODAY)
    assert not any("outside the model's population" in n for n in m.notes)


def test_the_mapping_of_a_linked_record_is_that_of_its_merged_copy(table):
    """The same findings whether the record is merged (one Patient) or linked (two, resources filed under either)."""
    res = [_palsy(), _vinca(ONSET - dt.timedelta(days=3)), _csf("cytology", LP_DAY, "positive"), _lab("805-2", LP_DAY, 40)]
    merged = X.map_bundle(_bundle(*copy.deepcopy(res), patient=_patient("new", birthDate="1990-06-01")), table,
                          today=TODAY)
    linked = _two_patients(_patient("new", ("replaces", "old"), birthDate="1990-06-01"),
                           _patient("old", ("replaced-by", "new"), active=False),
                           res[0], _of(res[1], "old"), res[2], _of(res[3], "old"))
    assert X.map_bundle(linked, table, today=TODAY).patient == merged.patient


# --- the third review of 10dfc96 (/work/lit/notes/s17/fhir3.md) -------------------------------------------------

def _at(r: dict, stamp: str) -> dict:
    return {**r, "effectiveDateTime": stamp}


def _tap(cyto: str, flow: str, counts: str) -> list[dict]:
    """One tap: a negative cytology, a positive flow and cell counts (40 white, 500 red cells) at their stamps."""
    return [_at(_csf("cytology", LP_DAY, "negative"), cyto), _at(_csf("flow", LP_DAY, "positive"), flow),
            _at(_lab("805-2", LP_DAY, 40), counts), _at(_lab("26454-9", LP_DAY, 500), counts)]


NEXT = (LP_DAY + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize("cyto, flow, counts", [
    (f"{NEXT}T00:15:00-04:00", f"{NEXT}T00:15:00-04:00", f"{LP_DAY}T23:15:00-05:00"),  # t06b: a LIS without DST
    (f"{LP_DAY}T22:00:00-08:00", f"{NEXT}T01:00:00-05:00", f"{LP_DAY}T22:00:00-08:00"),  # t06a: a send-out laboratory
    (f"{LP_DAY}T21:30:00-05:00", f"{LP_DAY}T21:30:00-05:00", f"{NEXT}T02:30:00Z"),        # s13: its counts in UTC
])
def test_one_tap_stamped_in_two_offsets_either_side_of_midnight_is_one_lp(cyto, flow, counts, table):
    """#1 (regression): stamps on the days written in them split one tap whose stamps carry two offsets into two LPs
    (or left its counts an LP of their own): the positive flow lost its traumatic flag and the first LP its profile.
    Grouped by instant first, the tap is one LP on one day."""
    m = X.map_bundle(_bundle(_palsy(), *_tap(cyto, flow, counts)), table, today=TODAY)
    lps = F.parse_patient(m.patient, "fhir").csf
    assert _lps(m) == [("negative", "positive")] and lps[0].traumatic == "yes"
    assert m.patient["csf_profile"] == "pleocytosis" and not any("no final cytology" in n for n in m.notes)


def test_a_tap_stamped_in_two_offsets_is_on_one_side_of_an_onset_given_as_a_date(table):
    """t06c: the palsy began on a day (no time); the tap was the evening before, Pacific time, its flow stamped by a
    laboratory in another zone after midnight. The whole tap is before the onset, not its flow alone after it."""
    onset = LP_DAY + dt.timedelta(days=1)
    tap = _tap(f"{LP_DAY}T22:00:00-08:00", f"{onset}T01:00:00-05:00", f"{LP_DAY}T22:00:00-08:00")
    m = X.map_bundle(_bundle(_palsy(onset=onset), *tap), table, today=TODAY)
    assert _lps(m) == [] and m.onset == onset.isoformat()
    assert {i["resource"] for i in m.ignored if i["why"] == "before the palsy's onset"} == \
        {f"Observation/r{i}" for i in range(1, 5)}


def test_two_taps_three_hours_apart_across_midnight_stay_two_lps(table):
    """Grouping by instant joins only stamps within same_lp_hours: two taps, each with its results and counts, three
    hours apart either side of midnight are two LPs, as before."""
    first = _tap(f"{LP_DAY}T23:00:00-05:00", f"{LP_DAY}T23:00:00-05:00", f"{LP_DAY}T23:00:00-05:00")
    second = _tap(f"{NEXT}T02:00:00-05:00", f"{NEXT}T02:00:00-05:00", f"{NEXT}T02:00:00-05:00")
    m = X.map_bundle(_bundle(_palsy(), *first, *second), table, today=TODAY)
    assert _lps(m) == [("negative", "positive"), ("negative", "positive")]


def _mpi_link(p: dict) -> dict:
    return {**p, "link": [{"other": {"reference": "http://mpi.example/fhir/Patient/777"}, "type": "seealso"}]}


def test_a_link_to_another_servers_patient_does_not_make_this_servers_patient_of_that_id_this_patients(table):
    """#2 (regression): with relative fullUrls (the CLI's and the prefetch's bundles), a link to a master index's
    Patient/777 made this server's Patient/777, another person, this patient's, and its positive cytology was read.
    The link keeps its server: only a reference written with it is the linked record's, and its id is not one a
    hook may name."""
    b = _bundle(_palsy(), _of(_csf("cytology", LP_DAY, "positive"), "777"), patient=_mpi_link(_patient("p1")))
    with pytest.raises(X.FhirError, match="is another patient: this server's Patient/777, where the record's "
                                          "Patient.link names another server's \\(http://mpi.example/fhir/Patient/777"):
        X.map_bundle(b, table, today=TODAY)
    b["entry"][-1]["resource"]["subject"] = {"reference": "http://mpi.example/fhir/Patient/777"}
    m = X.map_bundle(b, table, today=TODAY)
    assert _lps(m) == [("positive", None)] and m.record_ids == ["p1"]
    assert any("Patient/p1 seealso http://mpi.example/fhir/Patient/777" in n for n in m.notes)
    # the bundle's own server named (absolute fullUrls): a link to another server is not followed at all
    for e in b["entry"]:
        e["fullUrl"] = "http://ehr.example/fhir/" + e["fullUrl"]
    with pytest.raises(X.FhirError, match="a link to another server's Patient is not followed"):
        X.map_bundle(b, table, today=TODAY)


def _two_servers(linked: bool) -> dict:
    a = {"resourceType": "Patient", "id": "1", "birthDate": "1990-06-01"}
    if linked:
        a["link"] = [{"other": {"reference": "http://b.example/fhir/Patient/1"}, "type": "seealso"}]
    b = _bundle(_palsy(), _of(_csf("cytology", LP_DAY, "positive"), "1"), patient=a)
    b["entry"].insert(1, {"fullUrl": "http://b.example/fhir/Patient/1",
                          "resource": {"resourceType": "Patient", "id": "1", "birthDate": "1990-06-01"}})
    b["entry"][0]["fullUrl"] = "http://a.example/fhir/Patient/1"
    b["entry"][-1]["resource"]["subject"] = {"reference": "http://b.example/fhir/Patient/1"}
    return b


def test_two_servers_patients_of_one_id_are_two_patients_unless_linked(table):
    """#3: http://a.example/fhir/Patient/1 and http://b.example/fhir/Patient/1, no link: the second was dropped unread
    (kept by id) and b's positive cytology read as a's. Two Patients: refused, said; joined by a link, one."""
    with pytest.raises(X.FhirError, match="2 different Patient resources \\(two servers' Patient/1"):
        X.map_bundle(_two_servers(linked=False), table, today=TODAY)
    m = X.map_bundle(_two_servers(linked=True), table, today=TODAY)
    assert _lps(m) == [("positive", None)] and m.record_ids == ["1"]
    assert any("Patient.link: http://a.example/fhir/Patient/1 seealso http://b.example/fhir/Patient/1" in n
               for n in m.notes)


UCUM = "http://unitsofmeasure.org"


def _age(years: float) -> dict:
    return {"value": years, "unit": "a", "system": UCUM, "code": "a"}


@pytest.mark.parametrize("dated, said", [
    ({"onsetAge": _age(30)}, False),                                                # d01: about 2020
    ({"onsetString": "diagnosed 2019 at another hospital"}, False),                 # d02: may be before
    ({"onsetRange": {"low": _age(28), "high": _age(30)}}, False),                   # d03
    ({"onsetPeriod": {"end": "2019-06-01"}}, False),                                # d04: on or before 2019
    ({"abatementDateTime": "2024-01-01", "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/"
      "CodeSystem/condition-clinical", "code": "remission"}]}}, False),             # d07
    ({"onsetAge": _age(34.6)}, False),                                              # the age's year holds the palsy
    ({"onsetAge": _age(35)}, True),                                                 # after the palsy too
    ({"onsetPeriod": {"end": (ONSET + dt.timedelta(days=5)).isoformat()}}, True),   # only bounded, after it
])
def test_a_leukaemia_onset_given_as_an_age_range_text_or_bound_is_read_as_the_bounds_it_gives(dated, said, table):
    """#4 (regression): beside a Condition dated after the palsy (a transfer's date), a second one recorded after the
    palsy whose onset is an age, a range, text, a period's end or an abatement was taken as "no onset", and the card
    said the leukaemia was diagnosed after the palsy, "one without an onset" among them. Each form is read as the
    bounds it gives (text as "may be before"); the note names a Condition as without an onset only when it is."""
    after = _leukaemia("C91.00", "active", onsetDateTime=(ONSET + dt.timedelta(days=2)).isoformat())
    other = _leukaemia("C91.00", recordedDate=(ONSET + dt.timedelta(days=2)).isoformat(), **dated)
    m = X.map_bundle(_bundle(_palsy(), after, other), table, today=TODAY)
    notes = [n for n in m.notes if "outside the model's population" in n]
    assert bool(notes) == said, m.notes
    if said:
        assert notes[0].startswith("every leukaemia Condition dates the diagnosis after the palsy's onset (2025-01-15)")
        assert ("gives no onset" in notes[0]) == ("onsetPeriod" in dated)


def test_a_leukaemia_onset_age_without_a_birth_date_may_be_before_the_palsy(table):
    after = _leukaemia("C91.00", "active", onsetDateTime=(ONSET + dt.timedelta(days=2)).isoformat())
    other = _leukaemia("C91.00", recordedDate=(ONSET + dt.timedelta(days=2)).isoformat(), onsetAge=_age(30))
    m = X.map_bundle(_bundle(_palsy(), after, other, patient=_patient("p1")), table, today=TODAY)
    assert not any("outside the model's population" in n for n in m.notes)


@pytest.mark.parametrize("encounters, laterality", [(None, None), (("Encounter/e1", "Encounter/e1"), "unilateral"),
                                                   (("Encounter/e1", "Encounter/e2"), None)])
def test_a_second_side_recorded_without_a_side_a_week_later_leaves_the_side_unknown(encounters, laterality, table):
    """#6 (s07): a left palsy and, a week later, an encounter diagnosis with no bodySite and no onset ("new right-sided
    facial weakness" in its note, which palsy does not read) was read as the same palsy: unilateral, the direction
    that lowers P. It may be the other side: unknown, with what to enter; the same encounter ties them."""
    later = _sideless(recorded=ONSET + dt.timedelta(days=7))
    later["note"] = [{"text": "new right-sided facial weakness"}]
    first = _palsy()
    if encounters:
        first["encounter"], later["encounter"] = ({"reference": e} for e in encounters)
    m = X.map_bundle(_bundle(first, later), table, today=TODAY)
    assert m.patient.get("laterality") == laterality
    (note,) = [n for n in m.notes if n.startswith("laterality:")]
    assert ("enter laterality (bilateral if the other side" in note) == (laterality is None)
    assert ("the same encounter, Encounter/e1" in note) == (laterality is not None)


@pytest.mark.parametrize("kind, new_birth, old_birth, age_group, said", [
    ("merge", "2012-04-03", "2012-03-04", "child", "the surviving record's, Patient/new, is read"),  # l11
    ("merge", "1990-06-01", "2015-06-01", "adult", "the surviving record's, Patient/new, is read"),
    ("seealso", "2012-04-03", "2012-03-04", "child", "and each gives child at the palsy's onset: read"),
    ("seealso", "1990-06-01", "2015-06-01", None, "which give different age groups at the palsy's onset"),
])
def test_linked_birth_dates_that_disagree(kind, new_birth, old_birth, age_group, said, table):
    """#7: a merge that corrected a transposed birth date (2012-04-03, the duplicate's 2012-03-04) left the age group
    unknown, though both give a child. The surviving record's date is read when its replaced-by/replaces links single
    it out; else the age group is read when every date gives the same one; each said."""
    if kind == "merge":
        new, old = _patient("new", ("replaces", "old"), birthDate=new_birth), \
            _patient("old", ("replaced-by", "new"), active=False, birthDate=old_birth)
    else:
        new, old = _patient("new", ("seealso", "old"), birthDate=new_birth), _patient("old", birthDate=old_birth)
    m = X.map_bundle(_two_patients(new, old, _palsy()), table, today=TODAY)
    assert m.patient.get("age_group") == age_group
    (note,) = [n for n in m.notes if n.startswith("age_group: the linked Patient records give different birth dates")]
    assert f"(Patient/new {new_birth}, Patient/old {old_birth})" in note and said in note


def test_reference_range_ages_follow_linked_birth_dates_only_where_every_date_agrees(table):
    """The span of the linked dates is the birth date read: a protein range for the ages both dates give applies."""
    protein = {**_lab("2880-3", LP_DAY, 60, unit="mg/dL"),
               "referenceRange": [{"high": {"value": 45, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
                                   "age": {"low": _age(18)}}]}
    for old_birth, profile in (("1990-03-01", "protein_only"), ("2015-06-01", None)):
        new, old = _patient("new", ("seealso", "old"), birthDate="1990-06-01"), _patient("old", birthDate=old_birth)
        res = [_palsy(), _csf("cytology", LP_DAY, "negative"), _lab("805-2", LP_DAY, 2), protein]
        m = X.map_bundle(_two_patients(new, old, *res), table, today=TODAY)
        assert m.patient.get("csf_profile") == profile, m.notes


def _zero_flow(text: str | None, value: bool = True) -> dict:
    r = _flow(ZERO if value else {}, "NEG")
    if text is not None:
        r["interpretation"][0]["text"] = text
    return r


@pytest.mark.parametrize("text, value, shown", [
    ("Negative; see comment: small CD19+ population of uncertain significance", True, True),  # f06
    ("Negative; see comment: small CD19+ population of uncertain significance", False, True),  # no value at all
    ("Negative", True, False), (None, True, False), ("NEG", False, False),
])
def test_the_words_of_an_interpretation_a_result_is_read_from_are_shown(text, value, shown, table):
    """#8: a flow of 0 % read negative by its interpretation NEG, whose text reads "Negative; see comment: small CD19+
    population of uncertain significance", was read with no word of the text. The interpretation is then the concept
    read: its words are shown as a coded value's are, never parsed."""
    m = X.map_bundle(_bundle(_palsy(), _zero_flow(text, value)), table, today=TODAY)
    assert _lps(m) == [(None, "negative")]
    notes = [n for n in m.notes if "text beside the code" in n]
    assert bool(notes) == shown and (not shown or "coded negative (by its interpretation)" in notes[0])


def test_results_read_from_a_linked_record_that_names_another_person_are_named(table):
    """#9 (l04): pt1 (Anna Smith, female, 1990) seealso pt9 (Tom Jones, male, 2015), whose positive cytology was read
    with nothing to show whose it was. R4: a seealso is the same person and its data may contradict, so it is read;
    the card says what differs and which results came from it. Linked records that agree say nothing more."""
    anna = _patient("pt1", ("seealso", "pt9"), birthDate="1990-06-01", gender="female",
                    name=[{"family": "Smith", "given": ["Anna"]}])
    tom = _patient("pt9", birthDate="2015-02-02", gender="male", name=[{"family": "Jones", "given": ["Tom"]}])
    b = _two_patients(anna, tom, _palsy(), _csf("cytology", LP_DAY, "negative"),
                      _of(_csf("cytology", LP_DAY + dt.timedelta(days=2), "positive"), "pt9"))
    m = X.map_bundle(b, table, today=TODAY)
    (note,) = [n for n in m.notes if n.startswith("Patient/pt9, linked to Patient/pt1")]
    assert "gives another name, gender (male, not female) and birth date (2015-02-02, not 1990-06-01)" in note
    assert f"CSF cytology positive, LP on {LP_DAY + dt.timedelta(days=2)} (Observation/r2)" in note
    assert "Smith" not in note and "Jones" not in note and "check the link" in note
    same = _patient("pt9", birthDate="1990-06-01", gender="female", name=[{"family": "Smith", "given": ["A."]}])
    m = X.map_bundle(_two_patients(anna, same, _palsy(), _of(_csf("cytology", LP_DAY, "positive"), "pt9")), table,
                     today=TODAY)
    assert not any(n.startswith("Patient/pt9, linked") for n in m.notes)


@pytest.mark.parametrize("links, record, said", [
    ((("A", "replaces", "B"),), "A", "the surviving record by its replaced-by and replaces links, though it is marked "
                                     "active false"),                                                       # l06
    ((("A", "replaced-by", "B"), ("B", "replaced-by", "A")), "B", "their marks contradict (each is replaced by "
                                                                  "another): named by the first in the bundle"),  # l02
    ((("A", "refer", "B"),), "B", "the main record: the other is not the main source of information"),      # l09
    ((("A", "replaced-by", "B"), ("B", "replaced-by", "A")), "B", "the surviving record by active false, though it "
                                                                  "is replaced by another too"),  # a cycle, A inactive
])
def test_the_record_is_named_by_the_marks_in_their_order_and_contradictions_are_said(links, record, said, table):
    """#10: a replaces beside active false, and a cycle of replaced-by, were said to be "no one of them is marked";
    l06 was named by the replaced record; a refer was named by the record that is "not the main source". B is first
    in the bundle; A is active false in the first and last cases."""
    pats = {pid: _patient(pid) for pid in ("A", "B")}
    for a, kind, b in links:
        pats[a].setdefault("link", []).append({"other": {"reference": f"Patient/{b}"}, "type": kind})
    if links[0][1] == "replaces" or "active false" in said:
        pats["A"]["active"] = False
    m = X.map_bundle(_two_patients(pats["A"], pats["B"], _palsy(), old_first=True), table, today=TODAY)
    assert m.record_id == record and m.record_ids[0] == record
    assert any(f"read as one patient, Patient/{record} ({said}" in n for n in m.notes), m.notes


def test_a_utc_stamp_takes_its_own_side_of_a_daylight_saving_change_where_the_zone_database_tells_it(table):
    """#11 (t02c): an LP stamped 2026-11-02T04:30Z (23:30 EST on 11-01, after the US fall-back) whose nearest non-UTC
    stamp was before the change (-04:00) was placed on 11-02, though a -05:00 stamp came 18 days later. Every zone
    with -04:00 then and -05:00 later has -05:00 at the LP: it is on 11-01, before a palsy that began on 11-02."""
    before = {**_vinca(dt.date(2026, 10, 25)), "effectiveDateTime": "2026-10-25T10:00:00-04:00"}
    later = {**_vinca(dt.date(2026, 11, 20)), "effectiveDateTime": "2026-11-20T10:00:00-05:00"}
    cyto = _at(_csf("cytology", LP_DAY, "positive"), "2026-11-02T04:30:00Z")
    b = _bundle(_palsy(onset=dt.date(2026, 11, 2)), before, later, cyto)
    zones = FD.Zones.of(b)
    assert FD.parse_when("2026-11-02T04:30:00Z", zones).lo == dt.date(2026, 11, 1)
    m = X.map_bundle(b, table, today=dt.date(2026, 12, 1))
    assert _lps(m) == [] and any("positive CSF cytology of 2026-11-01" in n for n in m.notes)
    # where no zone's change tells the side (a laboratory system without daylight saving: -04:00 and -05:00 in July),
    # the nearest stamp's offset, as before
    july = FD.Zones([(FD.parse_when("2026-07-01T10:00:00-04:00").at, -240),
                     (FD.parse_when("2026-07-20T10:00:00-05:00").at, -300)])
    assert july.at(FD.parse_when("2026-07-10T03:30:00Z").at) == -240


@pytest.mark.parametrize("kind", ["replaces", "replaced-by", "seealso", "refer"])
def test_only_a_merge_names_ids_a_hook_may_give_for_the_record(kind, table):
    """The service's second review of s17, #3: a hook's patientId may be the record's own or one a merge replaced
    (``merged_ids``); a seealso or refer link (another organisation's record, or one linked in error) joins the
    resources (``record_ids``) but is not an id the hook may name for this record, nor is another server's."""
    b = _bundle(_palsy(), patient=_patient("p1", (kind, "p2")))
    m = X.map_bundle(b, table, today=TODAY)
    assert set(m.record_ids) == {"p1", "p2"}
    assert m.merged_ids == (["p1", "p2"] if kind == "replaces" else ["p2", "p1"] if kind == "replaced-by" else ["p1"])
    other = _patient("p1")
    other["link"] = [{"other": {"reference": "https://other-org.example/fhir/Patient/p2"}, "type": kind}]
    assert X.map_bundle(_bundle(_palsy(), patient=other), table, today=TODAY).merged_ids == ["p1"]
