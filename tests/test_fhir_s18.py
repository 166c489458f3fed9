"""FHIR in, session 18: the FHIR mapping's leftovers of s17 (/work/lit/notes/s17/closing.md, "FHIR"), from a hospital
integration engineer's and a clinician's view, each on a minimal bundle:

1. a search whose OperationOutcome says it is incomplete (a warning, an error) is read in part, as a page of more;
2. a relative reference is read on its entry's server (R4 Bundle): another server's Patient/1 is never this patient;
3. the notes a card shows name findings by their labels, never by their identifiers;
4. a stamp at +00:00 that may be the record's local winter time (London) is read on the day written in it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re

import pytest

from palsy.model import fhir as X
from palsy.model import fhir_dates as FD
from palsy.model import findings as F
from palsy.model import schema as SC
from palsy.scripts.serve import prefetch as P
from palsy.scripts.serve.loadtest import prefetch_of
from palsy.scripts.serve.record_text import labelled
from tests.test_fhir import ONSET, _bundle, _lab, _leukaemia, _local, _nelarabine, _palsy, _vinca, nelarabine  # noqa: F401

pytestmark = pytest.mark.xdist_group("fhir")

LP_DAY = ONSET + dt.timedelta(days=1)
TODAY = dt.date(2026, 6, 1)
A, B = "https://a.example/fhir", "https://b.example/fhir"

@pytest.fixture(scope="module")
def table():
    return X.load_table()


def _map(bundle: dict, table: X.Table, **kw) -> X.FhirMapping:
    return X.map_bundle(bundle, table, today=TODAY, **kw)


def _lps(m: X.FhirMapping) -> list[tuple[str | None, str | None]]:
    return [(lp.result("cytology"), lp.result("flow")) for lp in F.parse_patient(m.patient, "fhir").csf]


# --- 1: a search whose OperationOutcome says it is incomplete ---------------------------------------------------

def _outcome(severity: str = "warning", code: str = "suppressed", **issue) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code,
                                                           "diagnostics": "some results withheld", **issue}]}


def _search(*resources: dict, outcome: dict | None = None, mode: str | None = "outcome") -> dict:
    """A searchset of ``resources`` (each this patient's), and ``outcome`` among its entries (``search.mode``:
    ``mode``, none when None)."""
    entries = [{"resource": {"id": f"s{i}", "subject": {"reference": "Patient/p1"}, **r}, "search": {"mode": "match"}}
               for i, r in enumerate(resources)]
    if outcome is not None:
        entries.append({"resource": outcome, **({"search": {"mode": mode}} if mode else {})})
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def _first_lp() -> list[dict]:
    """One LP, the day after onset: a negative cytology, 12 white cells (pleocytosis), 3% blood blasts."""
    return [_lab("csf-cytology", LP_DAY, system="urn:palsy:code", coded="negative"), _lab("805-2", LP_DAY, 12),
            _lab("26446-5", LP_DAY, 3, unit="%")]


def _mri(level: str) -> dict:
    return {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "MRI"},
            "effectiveDateTime": LP_DAY.isoformat(),
            "conclusionCode": [{"coding": [{"system": "urn:palsy:mri", "code": level}]}]}


@pytest.mark.parametrize("severity,partial", [("warning", True), ("error", True), ("fatal", True),
                                              ("information", False)])
def test_an_observation_search_with_a_warning_outcome_leaves_the_first_lp_unknown(severity, partial, table):
    """#1: a search that returned its results with an OperationOutcome warning (results withheld) or error was only
    said on the card; the first LP's profile and blood blasts were read from what came back as if it were all. It is
    read as a page of more now; an information-only outcome (a server's hint) is not partial."""
    b = _bundle(_palsy())
    b["entry"].append({"resource": _search(*_first_lp(), outcome=_outcome(severity))})
    m = _map(b, table)
    assert ("csf_profile" in m.patient) is not partial and ("circulating_blasts" in m.patient) is not partial
    assert m.incomplete == (["Observation"] if partial else [])
    assert _lps(m) == [("negative", None)]  # the LP read stands: a fact of what came back
    said = [n for n in m.notes if n.startswith("incomplete record: the Observation search")]
    assert bool(said) is partial
    if partial:
        assert f"its OperationOutcome says {severity} (suppressed)" in said[0] and "unknown, not absent" in said[0]
        assert any(n.startswith("csf_profile, circulating_blasts: the first LP cannot be told") for n in m.notes)
    else:
        assert m.patient["csf_profile"] == "pleocytosis"


@pytest.mark.parametrize("level,severity,kept", [("normal", "warning", False), ("mass", "warning", True),
                                                 ("normal", "information", True)])
def test_a_report_search_with_a_warning_outcome_keeps_only_an_mri_nothing_could_outrank(level, severity, kept, table):
    """#1: the MRI's precedence is read only from a whole report search: a 'normal' read beside a warning that
    results were withheld could be outranked by a mass in what was withheld."""
    b = _bundle(_palsy())
    b["entry"].append({"resource": _search(_mri(level), outcome=_outcome(severity))})
    m = _map(b, table)
    assert ("mri" in m.patient) is kept and (m.incomplete == ["DiagnosticReport"]) is (severity != "information")


@pytest.mark.parametrize("issue", [5, True, [], ["text"], [{"code": "suppressed"}], [{"severity": "critical"}],
                                   [{"severity": "information"}, {"severity": None}]],
                         ids=["number", "true", "empty", "not-object", "no-severity", "unknown-severity", "mixed"])
def test_an_outcome_whose_issues_cannot_be_read_makes_its_search_partial(issue, table):
    """#1: what an OperationOutcome with a malformed issue list says cannot be told (it was a 500 once, s17 review
    #4): it may be a warning, so its search is read in part, and the note says an issue could not be read."""
    b = _bundle(_palsy())
    b["entry"].append({"resource": _search(*_first_lp(), outcome={"resourceType": "OperationOutcome", "issue": issue})})
    m = _map(b, table)
    assert m.incomplete == ["Observation"] and "csf_profile" not in m.patient
    assert any("an issue palsy cannot read" in n for n in m.notes)


def test_any_outcome_among_a_searchs_entries_counts_in_a_nested_bundle_too(table):
    """#1: an OperationOutcome without ``search.mode: outcome`` among a searchset's entries, two Bundles deep, makes
    that search partial; its types are its matches' (never OperationOutcome, never Bundle)."""
    inner = _search(*_first_lp(), outcome=_outcome("error", "too-costly"), mode=None)
    b = _bundle(_palsy())
    b["entry"].append({"resource": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}})
    m = _map(b, table)
    assert m.incomplete == ["Observation"] and "csf_profile" not in m.patient
    assert any("its OperationOutcome says error (too-costly)" in n for n in m.notes)


def test_a_search_that_returned_only_an_outcome_counts_for_every_type_unless_its_link_names_it(table):
    """#1: a failed search with no matches: its type from its self link; with none, every type is incomplete (the
    first LP too)."""
    b = _bundle(_palsy(), *_first_lp())
    failed = _search(outcome=_outcome("error", "processing"))
    b["entry"].append({"resource": failed})
    m = _map(b, table)
    assert m.incomplete == ["unknown"] and "csf_profile" not in m.patient
    failed["link"] = [{"relation": "self", "url": f"{A}/Procedure?patient=p1"}]
    m = _map(b, table)
    assert m.incomplete == ["Procedure"] and m.patient["csf_profile"] == "pleocytosis"
    assert any(n.startswith("incomplete record: the Procedure search") for n in m.notes)


def _prefetch(*resources: dict) -> dict:
    """The prefetch a record system would send for a bundle of this patient's ``resources`` (tests/test_service)."""
    return prefetch_of(_bundle(_palsy(), _leukaemia("C91.00", "active"), *resources))


def test_the_service_reads_a_prefetch_search_with_a_warning_outcome_in_part(table):
    """#1, the service: each prefetch key's value is wrapped in a collection (prefetch.collection); a warning in the
    observations search leaves the first LP unknown, and the procedures search that failed outright (only an
    OperationOutcome, no link) is known by its template, so it does not make every type incomplete."""
    templates = P.templates(table)
    pre = _prefetch(*_first_lp())
    assert _map(P.collection(pre, templates), table).patient["csf_profile"] == "pleocytosis"
    pre["procedures"] = _search(outcome=_outcome("error", "processing"))
    m = _map(P.collection(pre, templates), table)
    assert m.incomplete == ["Procedure"] and m.patient["csf_profile"] == "pleocytosis"
    # the keys without their templates: the failed search's type cannot be told
    assert _map(P.collection(pre, list(templates)), table).incomplete == ["unknown"]
    pre["observations"]["entry"].append({"resource": _outcome(), "search": {"mode": "outcome"}})
    m = _map(P.collection(pre, templates), table)
    assert m.incomplete == ["Observation", "Procedure"] and "csf_profile" not in m.patient
    assert "circulating_blasts" not in m.patient and _lps(m) == [("negative", None)]


@pytest.mark.slow
def test_palsy_posterior_fhir_reads_a_search_with_a_warning_in_part(palsy, tmp_path):
    """#1 through the command: exit 0, the note on stderr, the first LP's profile unknown in the answer's patient
    (read with an information-only outcome)."""
    b = _bundle(_palsy(), _leukaemia("C91.00", "active"))
    b["entry"].append({"resource": _search(*_first_lp(), outcome=_outcome())})
    path = tmp_path / "warning.json"
    path.write_text(json.dumps(b))
    done = palsy("posterior", "--fhir", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert "incomplete record: the Observation search" in done.stderr and "warning (suppressed)" in done.stderr
    assert "the first LP cannot be told" in done.stderr and "Traceback" not in done.stderr
    out = json.loads(done.stdout)
    assert out["patient"]["csf_profile"] == "unknown" and out["patient"]["csf"] == [{"cytology": "negative"}]
    info = copy.deepcopy(b)
    info["entry"][-1]["resource"]["entry"][-1]["resource"] = _outcome("information", "informational")
    path.write_text(json.dumps(info))
    done = palsy("posterior", "--fhir", str(path), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["patient"]["csf_profile"] == "pleocytosis"
    assert "incomplete record" not in done.stderr


# --- 2: relative references read on their entry's server -----------------------------------------------------

def _positive_cytology(full_url: str, subject: str = "Patient/p1") -> dict:
    return {"fullUrl": full_url, "resource": {**_lab("csf-cytology", LP_DAY, system="urn:palsy:code", coded="positive"),
                                              "id": re.split(r"[/:]", full_url)[-1], "subject": {"reference": subject}}}


def _two_servers(patient_url: str | None, result_url: str, subject: str = "Patient/p1") -> dict:
    """The Patient (its fullUrl ``patient_url``, none when None) and its palsy on the Patient's server (A when it
    gives none); a positive cytology at ``result_url`` whose subject is ``subject``."""
    b = _bundle(_palsy())
    if patient_url is None:
        b["entry"][0].pop("fullUrl")
    else:
        b["entry"][0]["fullUrl"] = patient_url
    b["entry"][1]["fullUrl"] = f"{patient_url.rsplit('/Patient/', 1)[0] if patient_url else A}/Condition/r0"
    b["entry"].append(_positive_cytology(result_url, subject))
    return b


@pytest.mark.parametrize("result_url,read", [(f"{B}/Observation/x1", False), (f"{A}/Observation/x1", True),
                                             ("Observation/x1", True), ("urn:uuid:4b0d8a64-0000-4000-8000-00000000000a",
                                                                        True)],
                         ids=["other-server", "same-server", "relative-fullUrl", "urn-uuid"])
def test_a_relative_reference_of_another_servers_entry_is_not_read_as_this_patients(result_url, read, table):
    """#2: R4 reads a relative reference on its entry's server: a result at server B whose subject is Patient/p1 is
    B's Patient/p1, maybe another person; it had been read as this patient's (A's Patient/p1). Now it is listed, said
    on the card with both servers, and not read; on A, or in an entry of no server, it is read as before."""
    m = _map(_two_servers(f"{A}/Patient/p1", result_url), table)
    assert (_lps(m) == [("positive", None)]) is read
    said = [n for n in m.notes if n.startswith("whose record:")]
    assert bool(said) is not read
    if not read:
        assert "1 resource (Observation) not read as this patient's" in said[0] and B in said[0] and A in said[0]
        assert "behind a proxy, send the record with one base" in said[0]
        assert any(i["resource"] == "Observation/x1" and "not read as this patient's" in i["why"] for i in m.ignored)


def test_behind_a_proxy_two_bases_of_one_server_are_not_refused_and_the_card_says_why(table):
    """#2, the s17 fear: a Patient at https://host/fhir and its results at http://host:8080/fhir with relative
    subjects (one server under two bases). The record is answered (never refused for it), the results are not read
    (they cannot be told from another patient's), and the note names both bases and what to do."""
    b = _two_servers("https://ehr.example/fhir/Patient/p1", "http://ehr.example:8080/fhir/Observation/x1")
    m = _map(b, table)
    assert _lps(m) == [] and m.has_palsy
    (note,) = [n for n in m.notes if n.startswith("whose record:")]
    assert "http://ehr.example:8080/fhir" in note and "https://ehr.example/fhir" in note and "one base" in note


def test_another_patients_id_in_another_servers_entry_is_still_refused(table):
    """#2: a relative reference to another id is another patient, whichever server: the bundle is refused."""
    with pytest.raises(X.FhirError, match="another patient"):
        X.map_bundle(_two_servers(f"{A}/Patient/p1", f"{B}/Observation/x1", "Patient/p2"), table)


@pytest.mark.parametrize("second,read", [(f"{A}/Observation/x2", True), (f"{B}/Observation/x2", False)],
                         ids=["one-server", "two-servers"])
def test_a_patient_of_no_server_is_the_one_server_its_references_name(second, read, table):
    """#2: the Patient's entry gives no server (the prefetch's Patient): its server is the one on which the record's
    references to it are read. Entries of two servers, each naming Patient/p1, cannot be told apart: neither is read
    (they had both been read as this patient's), and the card says to give the Patient's fullUrl."""
    b = _two_servers(None, f"{A}/Observation/x1")
    b["entry"].append(_positive_cytology(second))
    b["entry"][-1]["resource"]["valueCodeableConcept"]["coding"][0]["code"] = "260385009"  # negative
    b["entry"][-1]["resource"]["effectiveDateTime"] = (LP_DAY + dt.timedelta(days=3)).isoformat()
    m = _map(b, table)
    assert _lps(m) == ([("positive", None), ("negative", None)] if read else [])
    assert m.has_palsy is read  # the palsy's Condition is at A too: under two servers it is not read either
    said = [n for n in m.notes if n.startswith("whose record:")]
    assert bool(said) is not read and (read or "give the Patient's fullUrl" in said[0])


def test_linked_patients_of_two_servers_each_read_their_own_servers_references(table):
    """#2: Patients A/p1 and B/p1 joined by a link are one patient: a relative reference in B's entry is B's
    Patient/p1, this patient's, and read (as it was); the link's absolute reference joins them."""
    b = _two_servers(f"{A}/Patient/p1", f"{B}/Observation/x1")
    b["entry"][0]["resource"]["link"] = [{"other": {"reference": f"{B}/Patient/p1"}, "type": "seealso"}]
    b["entry"].insert(1, {"fullUrl": f"{B}/Patient/p1", "resource": {"resourceType": "Patient", "id": "p1",
                                                                     "birthDate": "1990-06-01"}})
    m = _map(b, table)
    assert _lps(m) == [("positive", None)] and not any(n.startswith("whose record:") for n in m.notes)


def test_the_prefetch_with_absolute_fullUrls_of_one_server_is_read_as_before(table):
    """#2: a real prefetch: the Patient with no fullUrl, each search's entries with the record server's fullUrls and
    relative subjects. Its server is that one, and everything is read."""
    pre = _prefetch(*_first_lp())
    for value in pre.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            for e in value["entry"]:
                e["fullUrl"] = f"{A}/{e['resource']['resourceType']}/{e['resource']['id']}"
    m = _map(P.collection(pre, P.templates(table)), table)
    assert m.patient["csf_profile"] == "pleocytosis" and m.has_palsy and m.has_leukaemia
    assert not any(n.startswith("whose record:") for n in m.notes)


# --- 4: +00:00 as a record's local winter time ----------------------------------------------------------------

def _hsct_in_summer() -> dict:
    """A transplant the July before, stamped in London's summer time (+01:00): the record's non-UTC stamp."""
    return {"resourceType": "Procedure", "status": "completed", "performedDateTime": "2024-07-10T10:00:00+01:00",
            "code": {"coding": [{"system": "urn:palsy:code", "code": "allogeneic-hsct"}]}}


@pytest.mark.parametrize("stamp,inside", [("2024-12-17T23:30:00+00:00", False), ("2024-12-18T23:30:00+00:00", True),
                                          ("2024-12-17T23:30:00Z", False)], ids=["29-days", "28-days", "Z"])
def test_a_london_winter_dose_at_23_30_is_on_the_day_written_in_it(stamp, inside, table):
    """#4: a London record (summer stamps +01:00) with a dose at 23:30 +00:00 (winter: local time), 29 days before a
    palsy dated 15 January: read at +01:00, the nearest summer stamp's, it fell on the next day, within 28 days, and
    recent vincristine was read yes. London is at +00:00 then: the day written in it is read."""
    dose = _vinca(ONSET)
    dose["effectiveDateTime"] = stamp
    m = _map(_bundle(_palsy(), _hsct_in_summer(), dose), table)
    assert (m.patient.get("recent_vincristine") == "yes") is inside
    assert m.patient.get("recent_hsct") == "yes"  # the transplant 6 months before: its window is 12


def test_a_london_lp_the_evening_before_the_onset_is_not_this_palsys(table):
    """#4: an LP at 23:30 +00:00 the evening before a palsy dated 15 January had been read on the 15th, this palsy's
    first LP; it is before the onset."""
    before = _lab("csf-cytology", ONSET, system="urn:palsy:code", coded="positive")
    before["effectiveDateTime"] = "2025-01-14T23:30:00+00:00"
    after = _lab("csf-cytology", ONSET, system="urn:palsy:code", coded="negative")
    after["effectiveDateTime"] = "2025-01-20T10:30:00+00:00"
    m = _map(_bundle(_palsy(), _hsct_in_summer(), before, after), table)
    assert _lps(m) == [("negative", None)]
    assert any("positive CSF cytology of 2025-01-14" in n and "before the palsy's onset" in n for n in m.notes)


@pytest.mark.parametrize("neighbours,stamp,day", [
    ([("2024-07-10T10:00:00+01:00", 60)], "2025-01-14T23:30:00+00:00", "2025-01-14"),
    ([("2024-07-10T10:00:00+01:00", 60)], "2024-07-14T23:30:00Z", "2024-07-15"),
    ([("2025-01-14T21:30:00-05:00", -300)], "2025-01-15T02:30:00Z", "2025-01-14"),
    ([("2025-01-10T10:00:00+01:00", 60)], "2025-01-14T23:30:00Z", "2025-01-15"),
    ([("2024-07-10T10:00:00+02:00", 120)], "2025-01-14T23:30:00Z", "2025-01-15"),
    ([], "2025-01-14T23:30:00Z", "2025-01-14"),
], ids=["london-winter", "london-summer-utc-clock", "new-york", "paris-winter", "paris-summer-only", "no-zone"])
def test_a_utc_stamp_is_local_only_where_the_records_zone_may_be_at_utc(neighbours, stamp, day):
    """#4: a UTC stamp is read on its own day when a zone at the offsets of the record's nearest stamps is at +00:00
    then (London in winter); else in the record's zone, as a server's or laboratory's clock (a London summer stamp
    in Z, New York, Paris; Antarctica's Troll, +00:00 in winter and +02:00 in summer, is no hospital's zone)."""
    zones = FD.Zones([(FD.parse_when(t).at, off) for t, off in neighbours])
    assert FD.parse_when(stamp, zones).lo.isoformat() == day


# --- 3: the card's notes name labels, never identifiers -----------------------------------------------------------

def test_conflicting_levels_are_said_in_the_schemas_labels(table):
    """#3: 'the record says more than one thing (protein_only (...); pleocytosis (...))' named levels by their
    identifiers; they are said by their labels now."""
    m = _map(_bundle(_palsy(), _local("csf_profile", "protein_only"), _local("csf_profile", "pleocytosis")), table)
    (note,) = [n for n in m.notes if "more than one thing" in n]
    assert table.schema.level_label("csf_profile", "protein_only") in note and "protein_only" not in note


def test_conflicting_states_are_said_in_the_schemas_labels(table):
    """#3: 'the most recent Conditions say more than one thing (not_in_remission (...); in remission, phase not said
    (...))': each statement now with its level's label."""
    m = _map(_bundle(_palsy(), _leukaemia("C91.00", "active", recordedDate="2025-01-10"),
                     _leukaemia("C91.01", "active", recordedDate="2025-01-10")), table)
    (note,) = [n for n in m.notes if "more than one thing" in n]
    assert "not_in_remission" not in note and table.schema.level_label("remission", "not_in_remission") in note


def test_a_result_dated_by_its_report_is_named_in_words(table):
    """#3: 'csf_cytology (Observation/...) has no collection time' named the measure by its identifier."""
    late = _lab("csf-cytology", LP_DAY, system="urn:palsy:code", coded="negative")
    late.pop("effectiveDateTime")
    late["issued"] = (LP_DAY + dt.timedelta(days=2)).isoformat() + "T09:00:00Z"
    m = _map(_bundle(_palsy(), _lab("csf-flow", LP_DAY, system="urn:palsy:code", coded="negative"), late), table)
    assert any(n.startswith("the CSF cytology (Observation/r2) has no collection time") for n in m.notes), m.notes


def test_a_new_findings_notes_are_in_its_own_labels(nelarabine):  # noqa: F811
    """#3 for a schema with other findings: the copy's recent_nelarabine, said twice over, is named on the card by
    the copy's label and its levels' labels."""
    ours = X.load_table(nelarabine)
    m = _map(_bundle(_palsy(), _nelarabine(ONSET - dt.timedelta(days=3)), _local("recent_nelarabine", "no")), ours)
    (note,) = [labelled(n, ours.schema) for n in m.notes if "more than one thing" in n]
    assert note.startswith(ours.schema.label("recent_nelarabine") + ": ")
    assert ours.schema.level_label("recent_nelarabine", "no") in note and "recent_nelarabine" not in note


def _identifiers(schema: SC.Schema) -> set[str]:
    """The identifiers a clinician must not read: every finding's and level's written with an underscore (a
    one-word identifier, 'onset', 'remission', is also the English word a note uses), the LP's, and the mapping's
    measures and windows."""
    names = {*schema.findings, *(lv for f in schema.categorical for lv in schema.by_name[f].allowed),
             *X.MEASURES, *X.WINDOWS, *schema.lp.methods, *schema.lp.results}
    return {n for n in names if "_" in n}


_LEADING = re.compile(r"^([a-z][a-z0-9_]*(?:, [a-z][a-z0-9_]*)*): ")


def _with(bundle: dict, *entries: dict) -> dict:
    bundle["entry"] += [{"resource": e} for e in entries]
    return bundle


def _note_bundles(table: X.Table, templates: dict[str, str]) -> list[dict]:
    """The bundles of this file's fixtures whose notes the card would show (each note path fixed or added here), and
    palsy's example bundles."""
    from tests.conftest import PATIENTS

    proxy = _two_servers("https://ehr.example/fhir/Patient/p1", "http://ehr.example:8080/fhir/Observation/x1")
    unsure = _two_servers(None, f"{A}/Observation/x1")
    unsure["entry"].append(_positive_cytology(f"{B}/Observation/x2"))
    dose, before = _vinca(ONSET), _lab("csf-cytology", ONSET, system="urn:palsy:code", coded="positive")
    dose["effectiveDateTime"], before["effectiveDateTime"] = "2024-12-17T23:30:00+00:00", "2025-01-14T23:30:00+00:00"
    late = _lab("csf-cytology", LP_DAY, system="urn:palsy:code", coded="negative")
    late.pop("effectiveDateTime")
    late["issued"] = (LP_DAY + dt.timedelta(days=2)).isoformat() + "T09:00:00Z"
    pre = _prefetch(*_first_lp())
    pre["procedures"] = _search(outcome=_outcome("error", "processing"))
    pre["observations"]["entry"].append({"resource": _outcome(), "search": {"mode": "outcome"}})
    return [
        _with(_bundle(_palsy()), _search(*_first_lp(), outcome=_outcome())),
        _with(_bundle(_palsy()), _search(*_first_lp(), outcome={"resourceType": "OperationOutcome", "issue": 5})),
        _with(_bundle(_palsy()), _search(_mri("normal"), outcome=_outcome())),
        _with(_bundle(_palsy(), *_first_lp()), _search(outcome=_outcome("error", "processing"))),
        P.collection(pre, templates),
        _two_servers(f"{A}/Patient/p1", f"{B}/Observation/x1"), proxy, unsure,
        _bundle(_palsy(), _hsct_in_summer(), dose, before),
        _bundle(_palsy(), _local("csf_profile", "protein_only"), _local("csf_profile", "pleocytosis")),
        _bundle(_palsy(), _leukaemia("C91.00", "active", recordedDate="2025-01-10"),
                _leukaemia("C91.01", "active", recordedDate="2025-01-10")),
        _bundle(_palsy(), _leukaemia("C91.01", "remission")),
        _bundle(_palsy(), _lab("csf-flow", LP_DAY, system="urn:palsy:code", coded="negative"), late),
        *(json.loads(p.read_text()) for p in sorted(PATIENTS.glob("*.fhir.json"))),
    ]


def test_no_note_on_the_card_names_an_identifier(table, nelarabine):  # noqa: F811
    """#3, a property over every note this file's fixtures produce, as the card shows them (record_text.labelled
    with the schema), palsy's schema and a copy's with another finding: no note names a finding, level, measure or
    window by an identifier, and every note that leads with findings leads with the schema's own (which the card
    turns into labels)."""
    ours = X.load_table(nelarabine)
    cases = [(table, b) for b in _note_bundles(table, P.templates(table))]
    cases.append((ours, _bundle(_palsy(), _nelarabine(ONSET - dt.timedelta(days=3)), _local("recent_nelarabine", "no"))))
    notes = [(t.schema, n) for t, b in cases for n in _map(b, t).notes]
    assert len(notes) >= 20
    for schema, raw in notes:
        shown = labelled(raw, schema)
        named = sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", shown)) & _identifiers(schema))
        assert not named, (named, shown)
        lead = _LEADING.match(raw)
        assert lead is None or all(n in schema.findings for n in lead.group(1).split(", ")), raw
