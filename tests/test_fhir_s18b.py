"""FHIR in, session 18, a second review of the mapping's fixes (9d7e867; /work/lit/notes/s18/fhir_review.md), as an
attacker and as a hospital integration engineer, each on a minimal bundle:

1. an OperationOutcome that says a search found nothing (Epic's 4101 in every empty searchset, R4's ``not-found``,
   HL7's MSG_NO_MATCH) or that is ``informational`` does not make the search incomplete;
2. an OperationOutcome among a collection's entries answers no search of the collection's types: every type is
   incomplete, not the types the collection holds;
3. a scheme's default port names the same server (``https://host:443/fhir`` is ``https://host/fhir``);
4. UTC stamps in many distinct years do not each look through every zone of the time-zone database.
"""

from __future__ import annotations

import copy

import pytest

from palsy.model import fhir as X
from palsy.model import fhir_dates as FD
from palsy.scripts.serve import prefetch as P
from tests.test_fhir import _bundle, _palsy
from tests.test_fhir_s18 import TODAY, A, _first_lp, _lps, _mri, _outcome, _prefetch, _search, _two_servers

pytestmark = pytest.mark.xdist_group("fhir")

EPIC_OID = "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369"


@pytest.fixture(scope="module")
def table():
    return X.load_table()


def _map(bundle: dict, table: X.Table) -> X.FhirMapping:
    return X.map_bundle(bundle, table, today=TODAY)


def _epic_no_results(code: str = "processing") -> dict:
    """Epic's OperationOutcome in an empty searchset (its documented error 4101, severity warning)."""
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": code, "details": {
        "coding": [{"system": EPIC_OID, "code": "4101", "display": "Resource request returns no results."}],
        "text": "Resource request returns no results."}}]}


def _empty(outcome: dict, url: str) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": 0, "link": [{"relation": "self", "url": url}],
            "entry": [{"resource": outcome, "search": {"mode": "outcome"}}]}


# --- 1: an outcome that says nothing was withheld ---------------------------------------------------------------

_NOTHING = {
    "epic-4101": _epic_no_results(),
    "epic-4101-informational": _epic_no_results("informational"),
    "r4-not-found": _outcome("warning", "not-found"),
    "hl7-no-match": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing",
                     "details": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/operation-outcome",
                                             "code": "MSG_NO_MATCH"}]}}]},
}


@pytest.mark.parametrize("name", list(_NOTHING))
def test_an_empty_observation_search_that_says_no_results_leaves_the_first_lp_read(name, table):
    """#1: a record's labs gathered by two Observation searches (Epic searches labs code by code): the CSF one with the
    first LP, the blood one empty, with Epic's warning 4101 "no results" (or R4's not-found). The empty search had made
    every Observation search incomplete, and the first LP's profile unknown; it found nothing, it withheld nothing."""
    b = _bundle(_palsy())
    b["entry"].append({"resource": _search(*_first_lp())})
    b["entry"].append({"resource": _empty(_NOTHING[name], f"{A}/Observation?patient=p1&code=26464-8")})
    m = _map(b, table)
    assert m.incomplete == [] and m.patient["csf_profile"] == "pleocytosis"
    assert not any(n.startswith("incomplete record") for n in m.notes)


@pytest.mark.parametrize("outcome,matches", [(_epic_no_results(), True), (_outcome("warning", "not-found"), True),
                                             (_outcome("warning", "suppressed"), False),
                                             (_outcome("error", "processing"), False)],
                         ids=["4101-with-matches", "not-found-with-matches", "suppressed-empty", "error-empty"])
def test_a_no_results_issue_beside_matches_or_a_withholding_one_still_makes_the_search_partial(outcome, matches, table):
    """#1, controls: 'no results' beside results read says something else happened; a withholding warning or an error
    in an empty search is a failed search: both stay incomplete, the first LP unknown."""
    b = _bundle(_palsy())
    if matches:
        b["entry"].append({"resource": _search(*_first_lp(), outcome=outcome)})
    else:
        b["entry"].append({"resource": _search(*_first_lp())})
        b["entry"].append({"resource": _empty(outcome, f"{A}/Observation?patient=p1&code=26464-8")})
    m = _map(b, table)
    assert m.incomplete == ["Observation"] and "csf_profile" not in m.patient


def test_an_informational_issue_is_not_a_search_read_in_part(table):
    """#1: R4's issue type ``informational`` is "unrelated to the processing success": a warning so coded, beside the
    results, had left the first LP unknown."""
    b = _bundle(_palsy())
    b["entry"].append({"resource": _search(*_first_lp(), outcome=_outcome("warning", "informational"))})
    m = _map(b, table)
    assert m.incomplete == [] and m.patient["csf_profile"] == "pleocytosis"


def test_an_epic_prefetch_of_empty_searches_says_no_incomplete_record(table):
    """#1, the service: an Epic prefetch whose medication, procedure and report searches found nothing, each with
    4101; each had been an "incomplete record" note on the card (eight for a patient given no vinca alkaloid)."""
    pre = _prefetch(*_first_lp())
    templates = P.templates(table)
    empty = [k for k in templates if k not in ("patient", "conditions", "observations")]
    for key in empty:
        pre[key] = _empty(_epic_no_results(), "x")
    m = _map(P.collection(pre, templates), table)
    assert len(empty) >= 4 and m.incomplete == [] and not any(n.startswith("incomplete record") for n in m.notes)
    assert m.patient["csf_profile"] == "pleocytosis"


# --- 2: an outcome among a collection's entries ---------------------------------------------------------------

def test_an_outcome_in_a_collection_makes_every_type_incomplete_not_the_collections(table):
    """#2: a collection (no search) holding a warning OperationOutcome had made "the Condition, Observation, Patient
    search" incomplete: the types it happened to hold, never the DiagnosticReports, so a 'normal' MRI stood beside a
    failure that may have been the report search's. Which search it answers cannot be told: every type."""
    b = _bundle(_palsy(), _mri("normal"))
    b["entry"].append({"resource": _outcome("warning", "suppressed")})
    m = _map(b, table)
    assert m.incomplete == ["unknown"] and "mri" not in m.patient
    assert any(n.startswith("incomplete record: a search (the bundle") for n in m.notes)


# --- 3: a scheme's default port ----------------------------------------------------------------------------

@pytest.mark.parametrize("result_url,read", [("https://a.example:443/fhir/Observation/x1", True),
                                             ("HTTPS://A.EXAMPLE:443/fhir/Observation/x1", True),
                                             ("https://a.example:8443/fhir/Observation/x1", False)],
                         ids=["443", "443-upper", "8443"])
def test_a_default_port_is_the_patients_server(result_url, read, table):
    """#3: the Patient at https://a.example/fhir and its result at https://a.example:443/fhir (one URL, RFC 3986) with
    a relative subject: the result had not been read (another server's Patient/p1); another port is another server."""
    m = _map(_two_servers(f"{A}/Patient/p1", result_url), table)
    assert (_lps(m) == [("positive", None)]) is read
    assert any(n.startswith("whose record:") for n in m.notes) is not read


def test_an_absolute_subject_with_the_default_port_is_not_another_servers_patient(table):
    """#3: a subject https://a.example:443/fhir/Patient/p1 had refused the whole record ("a Patient of another
    server")."""
    m = _map(_two_servers(f"{A}/Patient/p1", f"{A}/Observation/x1", "https://a.example:443/fhir/Patient/p1"), table)
    assert _lps(m) == [("positive", None)]


def test_a_prefetch_whose_searches_write_the_port_or_not_is_one_server(table):
    """#3, the service: the Patient of no server; the Condition search's fullUrls with :443, the Observation
    search's without. Two servers had been named, nothing was read (the palsy neither)."""
    pre = _prefetch(*_first_lp())
    for key, value in pre.items():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            base = "https://a.example:443/fhir" if key == "conditions" else A
            for e in value["entry"]:
                e["fullUrl"] = f"{base}/{e['resource']['resourceType']}/{e['resource']['id']}"
    m = _map(P.collection(copy.deepcopy(pre), P.templates(table)), table)
    assert m.has_palsy and m.patient["csf_profile"] == "pleocytosis"
    assert not any(n.startswith("whose record:") for n in m.notes)


# --- 4: the cost of UTC stamps in many years --------------------------------------------------------------------

def test_utc_stamps_in_many_years_do_not_each_look_through_every_zone(monkeypatch):
    """#4: a +00:00 stamp looked through all ~600 zones once for each year a record names (2 ms a year): a bundle of
    stamps in 300 years cost 360,000 zone look-ups, thousands of years seconds of the service. The zones ever at
    +00:00 are found once; each year looks through those. London's winter stays local (the rule is unchanged)."""
    FD._zero_zones(2025)  # the once-only work done
    FD._zero_zones.cache_clear()
    calls = 0
    real = FD._offset_in

    def counted(zone, instant):
        nonlocal calls
        calls += 1
        return real(zone, instant)

    monkeypatch.setattr(FD, "_offset_in", counted)
    years = range(1700, 2000)
    zones = FD.Zones([(FD.parse_when(f"{y}-07-10T10:00:00+01:00").at, 60) for y in years])
    days = [FD.parse_when(f"{y}-01-14T23:30:00Z", zones).lo for y in years]
    assert len(days) == len(years) and calls < 120 * len(years)
    london = FD.Zones([(FD.parse_when("2024-07-10T10:00:00+01:00").at, 60)])
    assert FD.parse_when("2025-01-14T23:30:00+00:00", london).lo.isoformat() == "2025-01-14"
