"""What the service asks the record for (the discovery's prefetch templates) and how it reads what came: the
keys left out, the keys the record could not answer (an OperationOutcome in place of the data, or inside a
search's results), and the one collection Bundle the mapping reads.

CDS Hooks 2.0 ("Prefetch Template"): a client that meets an error prefetching "SHOULD" send an OperationOutcome,
and services "SHOULD check any prefetched data for the existence of OperationOutcomes". A required key answered
so is a 412 (the service never calls the record); an optional key answered so is read as not sent, and the card
says the record could not answer it (until s17 it was a 412 too, and no card: the optional keys are the chained
searches a record system is likeliest to refuse). An OperationOutcome among a search's entries (``search.mode:
outcome``, an error or a warning such as results withheld) is said on the card: what that search did not return
is unknown, not absent (until s17 it was read silently as "not in the record"), and the mapping reads that search
as read only in part, as a page of more (session 18: what depends on the whole record, the first LP, the MRI's
precedence, is left unknown; each search's entry in the collection names its template, so that a search that
returned only an OperationOutcome is known by its type). Keys the service never asked for are not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from palsy.model import fhir as X

#: Prefetch keys a client may leave out (a chained search through medicationReference, which not every record
#: system serves): without them a dose given by reference is not read, and the card says so where it matters.
OPTIONAL = ("administrations_by_reference", "orders_by_reference", "administrations_by_ingredient",
            "orders_by_ingredient")
#: An OperationOutcome's severities said on the card (``information`` is not: a server's "no match" or the like).
SAID_SEVERITIES = ("fatal", "error", "warning")
#: The most characters of an issue's own words (``diagnostics`` or ``details.text``) a card quotes.
ISSUE_CHARS = 120
#: The resource types of the templates in words, for the card's notes.
SEARCHED = {"Patient": "the Patient", "Condition": "the Conditions", "Observation": "the Observations (CSF, blood "
            "blasts, findings in palsy's codes)", "MedicationAdministration": "the medication administrations",
            "MedicationRequest": "the medication orders", "Procedure": "the Procedures",
            "DiagnosticReport": "the imaging reports"}


def templates(table: X.Table) -> dict[str, str]:
    """The prefetch templates: the patient, and each resource type filtered to the table's codes."""
    def codes(role: str, *systems: str) -> str:
        rows = [f"{r.system}|{r.code}" for r in table.rows if r.role == role]
        return ",".join(rows + [f"{s}|" for s in systems])

    loc = table.local
    p = "{{context.patientId}}"
    return {
        "patient": f"Patient/{p}",
        "conditions": f"Condition?patient={p}",
        "observations": f"Observation?patient={p}&code={codes('lab', loc['finding_system'])}",
        "administrations": f"MedicationAdministration?patient={p}&code={codes('medication')}",
        # given or ordered by medicationReference (Epic, Cerner): the code search matches only a CodeableConcept,
        # so the Medication's code is searched through the reference and the Medication included
        "administrations_by_reference": f"MedicationAdministration?patient={p}&medication.code={codes('medication')}"
                                        f"&_include=MedicationAdministration:medication",
        "orders": f"MedicationRequest?patient={p}&code={codes('medication')}&status=completed",
        "orders_by_reference": f"MedicationRequest?patient={p}&medication.code={codes('medication')}&status=completed"
                               f"&_include=MedicationRequest:medication",
        # a Medication coded by a product code the table lacks (an RxNorm SCD) whose ingredient is a drug of the
        # table: found by the Medication's ingredient-code (FHIR R4's Medication search parameter)
        "administrations_by_ingredient": f"MedicationAdministration?patient={p}&medication.ingredient-code="
                                         f"{codes('medication')}&_include=MedicationAdministration:medication",
        "orders_by_ingredient": f"MedicationRequest?patient={p}&medication.ingredient-code={codes('medication')}"
                                f"&status=completed&_include=MedicationRequest:medication",
        "procedures": f"Procedure?patient={p}&code={codes('procedure')}",
        "reports": f"DiagnosticReport?patient={p}&conclusion={codes('imaging')}",
    }


def usage_requirements() -> str:
    """The discovery's ``usageRequirements``: what a client must send, may leave out, and need not mint."""
    return ("Answers from the prefetch only: it never calls the record, so fhirServer and fhirAuthorization are not "
            "used (no access token is needed). A card only for a clinician (context.userId Practitioner/ or "
            "PractitionerRole/; none for a Patient or RelatedPerson) viewing a patient with a coded leukaemia and a "
            f"current facial palsy Condition. The prefetch keys {', '.join(OPTIONAL)} may be left out or answered "
            "with an OperationOutcome (a dose given by medicationReference is then not read, and the card says so); "
            "the others are required (412 without them). The templates ask for palsy's own codes "
            "(urn:palsy:...) where no standard code was confirmed: map the record's local codes to them in the "
            "service's fhir_map.yaml (docs/service.md).")


def is_outcome(value: Any) -> bool:
    """Whether a prefetch value is an OperationOutcome (the record's error in place of the data)."""
    return X.is_outcome(value)


def collection(prefetch: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """One collection Bundle from the prefetch values of ``keys`` (resources, searchset Bundles; null is no data,
    an OperationOutcome no data either: the key is read as not sent). With ``keys`` the templates by key (as the
    service passes them), each Bundle's entry carries its template as the entry's ``self`` link: the search it
    answers, so that the mapping knows the resource type of a search that returned only an OperationOutcome
    (:func:`palsy.model.fhir.partial_searches`), which would otherwise count as a search of every type.

    Raises
    ------
    ValueError
        A value that is neither null nor a JSON object (its key named).
    """
    searches = keys if isinstance(keys, Mapping) else {}
    entries = []
    for key in keys:
        value = prefetch.get(key)
        if value is None or is_outcome(value):
            continue
        if not isinstance(value, dict):
            raise ValueError(f"prefetch {key}: a FHIR resource or Bundle is expected")
        template = searches.get(key)
        if value.get("resourceType") == "Bundle" and isinstance(template, str):
            entries.append({"link": [{"relation": "self", "url": template}], "resource": value})
        else:
            entries.append({"resource": value})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _issue_words(issue: Mapping[str, Any]) -> str:
    """An issue as the card says it: its code, and its own words cut to :data:`ISSUE_CHARS`."""
    code = issue.get("code") if isinstance(issue.get("code"), str) else "no code"
    details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
    text = issue.get("diagnostics") if isinstance(issue.get("diagnostics"), str) else details.get("text")
    if isinstance(text, str) and text.strip():
        text = " ".join(text.split())
        return f"{code}: {text[:ISSUE_CHARS]}{'...' if len(text) > ISSUE_CHARS else ''}"
    return code


def _issues(outcome: Mapping[str, Any], severities: tuple[str, ...] = SAID_SEVERITIES,
            empty: bool | None = None) -> list[tuple[str, str]]:
    """The (severity, words) of an OperationOutcome's issues of ``severities``; none when ``issue`` is not a list
    (an integer or ``true`` there was a 500: second review #4). With ``empty`` (an outcome among a search's entries:
    whether the search returned no match), not the issues that say the search withheld nothing
    (:func:`palsy.model.fhir.issue_withholds_nothing`: Epic's warning in every empty search had been said on the card
    as "results may be incomplete", one note per key a patient had nothing for)."""
    issues = outcome.get("issue")
    if not isinstance(issues, list):
        return []
    return [(i["severity"], _issue_words(i)) for i in issues if isinstance(i, dict) and i.get("severity") in severities
            and (empty is None or not X.issue_withholds_nothing(i, empty))]


def _outcome_words(outcome: Mapping[str, Any]) -> str:
    """What an OperationOutcome in place of a key's data said: its issues of :data:`SAID_SEVERITIES`, else its
    information-only ones said as such, else that it gave none."""
    said = "; ".join(w for _, w in _issues(outcome))
    if said:
        return said
    info = "; ".join(w for _, w in _issues(outcome, ("information",)))
    return f"information only: {info}" if info else "no issue given"


def _searched(template: str) -> str:
    return SEARCHED.get(template.split("?", 1)[0].split("/", 1)[0], "its resources")


def unanswered_note(keys: list[str], prefetch: Mapping[str, Any]) -> str:
    """The words for optional keys the record answered with an OperationOutcome (what it said)."""
    said = [f"{k} ({_outcome_words(prefetch[k])})" for k in keys]
    return f"the record could not answer the prefetch {', '.join(said)}"


def search_outcome_notes(prefetch: Mapping[str, Any], tmpl: Mapping[str, str]) -> list[str]:
    """The card's notes for OperationOutcomes among a search's entries (FHIR's ``search.mode: outcome``): an
    error or fatal issue says the search failed, a warning that its results may be incomplete; either way what
    it did not return is unknown, not absent."""
    notes = []
    for key, template in tmpl.items():
        value = prefetch.get(key)
        if not (isinstance(value, dict) and value.get("resourceType") == "Bundle"):
            continue
        entries = [e for e in value.get("entry") or [] if isinstance(e, dict)]
        empty = not any(isinstance(e.get("resource"), dict) and not is_outcome(e["resource"]) for e in entries)
        issues = [i for e in entries if is_outcome(e.get("resource")) for i in _issues(e["resource"], empty=empty)]
        if not issues:
            continue
        words = "; ".join(f"{s}, {w}" for s, w in issues)
        if any(s in ("fatal", "error") for s, _ in issues):
            notes.append(f"the record's search for {_searched(template)} (prefetch {key}) failed ({words}): what it "
                         f"did not return is unknown, not absent; read the record")
        else:
            notes.append(f"the record's search for {_searched(template)} (prefetch {key}) gave a warning ({words}): "
                         f"its results may be incomplete; read the record")
    return notes
