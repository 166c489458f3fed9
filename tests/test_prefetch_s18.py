"""The card's notes on a prefetch search's OperationOutcomes say only what the mapping reads as incomplete (s18):
Epic's "no results" warning in every empty search, R4's not-found there and any informational issue withhold
nothing and are not said; a warning that results were withheld, or an error, still is."""

from __future__ import annotations

import pytest

from palsy.scripts.serve import prefetch as P

TEMPLATES = {"administrations": "MedicationAdministration?patient={{context.patientId}}"}
EPIC_4101 = {"severity": "warning", "code": "processing",
             "details": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", "code": "4101",
                                     "display": "Resource request returns no results."}]}}
DOSE = {"resourceType": "MedicationAdministration", "id": "m1", "status": "completed"}


def _search(issue: dict, *matches: dict) -> dict:
    outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [*({"resource": m, "search": {"mode": "match"}} for m in matches),
                      {"resource": outcome, "search": {"mode": "outcome"}}]}


@pytest.mark.parametrize("issue", [EPIC_4101, {"severity": "warning", "code": "not-found"},
                                   {"severity": "warning", "code": "informational"},
                                   {"severity": "error", "code": "informational"}],
                         ids=["epic4101", "not-found", "informational", "informational-error"])
def test_an_empty_search_that_says_nothing_matched_gets_no_note(issue):
    assert P.search_outcome_notes({"administrations": _search(issue)}, TEMPLATES) == []


def test_issues_that_withhold_results_are_said_and_no_results_only_counts_where_nothing_came_back():
    withheld = {"severity": "warning", "code": "suppressed", "diagnostics": "results withheld"}
    (note,) = P.search_outcome_notes({"administrations": _search(withheld)}, TEMPLATES)
    assert "may be incomplete" in note and "suppressed" in note
    (note,) = P.search_outcome_notes({"administrations": _search({"severity": "error", "code": "exception"})},
                                     TEMPLATES)
    assert "failed" in note
    # Epic's "no results" beside a result it did return is not what it says it is: said
    (note,) = P.search_outcome_notes({"administrations": _search(EPIC_4101, DOSE)}, TEMPLATES)
    assert "may be incomplete" in note
