"""The mapping table in reverse: a FHIR R4 Bundle that says what a patient file says (the example bundles of
``patients/``, the load test's records), so that :func:`palsy.model.fhir.map_bundle` gives the patient back
(split from ``fhir.py``, December 2026)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from palsy.model import schema as SC
from palsy.model.fhir import EXPOSURE_ROLES, UNKNOWN, Row, Table, as_level, load_table


def _lp_methods(lp: Any) -> dict[str, str]:
    """One LP of a patient file (either form) as ``{cytology, flow, traumatic}``."""
    if isinstance(lp, str) and ":" in lp:
        result, method = (s.strip() for s in lp.split(":", 1))
        return {method: result}
    if isinstance(lp, Mapping) and "method" in lp:
        return {str(lp["method"]): str(lp["result"])}
    return {str(k): str(v) for k, v in (lp or {}).items()}


def example_bundle(patient: Mapping[str, Any], table: Table | None = None, *,
                   schema: SC.Schema | None = None) -> dict[str, Any]:
    """A FHIR R4 collection Bundle that says what ``patient`` (a patient file's mapping) says, written
    from the mapping table in reverse, with the synthetic dates of the table's ``examples`` section.

    Standard codes are used where the table has them (the palsy, the lineage, the laterality, an exposure
    of a ``medication`` or ``procedure`` row, CSF counts, blood blasts); everything else is palsy's own
    Observation. Mapping the result with :func:`map_bundle` gives back the patient's findings (a test
    checks it).

    Parameters
    ----------
    patient : mapping
        A patient file's content (findings of ``schema``).
    table : Table, optional
        The mapping table; palsy's own by default.
    schema : Schema, optional
        The schema the patient's findings follow; by default the table's.

    Returns
    -------
    dict
        The Bundle (JSON-ready).
    """
    table = table or load_table()
    schema = schema or table.schema
    ex = table.examples
    onset = dt.date.fromisoformat(str(ex["onset"]))
    pid = str(patient.get("id") or "patient")
    subject = {"reference": f"Patient/{pid}"}
    entries: list[dict[str, Any]] = []
    n = 0

    def add(res: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        res = {"resourceType": res.pop("resourceType"), "id": f"{res.pop('_kind')}-{n}", **res}
        if res["resourceType"] != "Patient":
            res["subject"] = subject
        entries.append({"fullUrl": f"{res['resourceType']}/{res['id']}", "resource": res})

    def rows(role: str, **match: str) -> list[Row]:
        return [r for r in table.rows if r.role == role and all(getattr(r, k) == v for k, v in match.items())]

    def coding(r: Row) -> dict[str, str]:
        return {"system": r.system, "code": r.code, "display": r.display}

    def says_only_its_finding(r: Row) -> bool:
        """Whether no other row reads ``r``'s code (C92.00 says an AML and its remission status: the example
        writes the remission as an Observation of its own, so it codes the lineage by a code that says only it)."""
        return not any(o.system == r.system and o.code == r.code and o.finding != r.finding for o in table.rows)

    def local_obs(finding: str, level: str) -> None:
        add({"resourceType": "Observation", "_kind": "finding", "status": "final",
             "code": {"coding": [{"system": table.local["finding_system"], "code": finding}], "text": finding},
             "valueCodeableConcept": {"coding": [{"system": table.local["level_system"], "code": level}], "text": level},
             "effectiveDateTime": onset.isoformat()})

    def quantity(kind: str, measure: str, day: dt.date, value: float, unit: str, **extra: Any) -> None:
        r = rows("lab", measure=measure)[0]
        add({"resourceType": "Observation", "_kind": kind, "status": "final", "code": {"coding": [coding(r)]},
             "effectiveDateTime": day.isoformat(), "valueQuantity": {"value": value, "unit": unit,
                                                                     "system": "http://unitsofmeasure.org", "code": unit},
             **extra})

    age = {"adult": int(ex["adult_age_years"]), "child": int(ex["child_age_years"])}
    person: dict[str, Any] = {"resourceType": "Patient", "_kind": "patient"}
    add(person)
    entries[-1]["resource"]["id"] = pid
    entries[-1]["fullUrl"] = f"Patient/{pid}"
    if patient.get("age_group") in age:
        entries[-1]["resource"]["birthDate"] = onset.replace(year=onset.year - age[patient["age_group"]]).isoformat()
    side = {"unilateral": "left", "bilateral": "both"}.get(str(patient.get("laterality")))
    palsy = {"resourceType": "Condition", "_kind": "palsy",
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                            "code": "active"}]},
             "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                "code": "confirmed"}]},
             "code": {"coding": [coding(r) for r in rows("palsy")[:3:2]], "text": "facial palsy"},
             "onsetDateTime": onset.isoformat()}
    if side:
        palsy["bodySite"] = [{"coding": [coding(rows("laterality", side=side)[0])]}]
    add(palsy)
    for finding in schema.findings:
        value = patient.get(finding)
        if finding == schema.lp.name:
            continue
        value = as_level(schema, finding, value)
        if value is None or (isinstance(value, str) and value.strip().lower() == UNKNOWN):
            continue
        value = str(value)
        if finding in ("age_group", "laterality"):
            continue
        lineage = ([r for r in rows("finding", finding="lineage", level=value) if says_only_its_finding(r)]
                   if finding == "lineage" else [])
        if lineage:
            add({"resourceType": "Condition", "_kind": "leukaemia",
                 "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                    "code": "confirmed"}]},
                 "code": {"coding": [coding(r) for r in lineage[:2]]}})
        elif exposure := [r for role in EXPOSURE_ROLES for r in rows(role, finding=finding, level=value)]:
            # the first row's drug or procedure, in every system the table codes it in
            first = exposure[0]
            day = onset - dt.timedelta(days=int((ex.get("days_before_onset") or {}).get(first.window, 1)))
            codes = {"coding": [coding(r) for r in exposure if r.role == first.role and r.display == first.display]}
            if first.role == "medication":
                add({"resourceType": "MedicationAdministration", "_kind": "medication", "status": "completed",
                     "medicationCodeableConcept": codes, "effectiveDateTime": day.isoformat()})
            else:
                add({"resourceType": "Procedure", "_kind": "procedure", "status": "completed", "code": codes,
                     "performedDateTime": day.isoformat()})
        elif finding == "mri":
            add({"resourceType": "DiagnosticReport", "_kind": "mri", "status": "final", "code": {"text": "Contrast MRI"},
                 "effectiveDateTime": (onset + dt.timedelta(days=1)).isoformat(),
                 "conclusionCode": [{"coding": [coding(rows("imaging", modality="MRI", level=value)[0])]}]})
        elif finding == "csf_profile":
            continue  # with the first LP below
        elif finding == "circulating_blasts":
            continue  # with the first LP below
        else:
            local_obs(finding, value)
    lps = [_lp_methods(lp) for lp in (patient.get(schema.lp.name) or [])]
    if not lps and (patient.get("csf_profile") not in (None, UNKNOWN) or
                    patient.get("circulating_blasts") not in (None, UNKNOWN)):
        lps = [{}]
    for i, lp in enumerate(lps, start=1):
        day = onset + dt.timedelta(days=i)
        for method in ("cytology", "flow"):
            if method in lp:
                r = rows("lab", measure=f"csf_{method}")[0]
                res = rows("result", result=lp[method])[0]
                add({"resourceType": "Observation", "_kind": f"csf-{method}", "status": "final",
                     "code": {"coding": [coding(r)]}, "effectiveDateTime": day.isoformat(),
                     "valueCodeableConcept": {"coding": [coding(res)]}})
        if "traumatic" in lp:
            limit = table.window("traumatic_red_cells_at_least_per_uL")
            quantity("csf-rbc", "csf_rbc", day, limit * 10 if lp["traumatic"] == "yes" else 0, "/uL")
        if i == 1:
            profile = patient.get("csf_profile")
            if profile in ("normal", "protein_only", "pleocytosis"):
                cells = table.window("pleocytosis_above_per_uL")
                quantity("csf-wbc", "csf_wbc", day, cells * 4 if profile == "pleocytosis" else 0, "/uL")
                high = float(ex["protein_reference_high_mg_dL"])
                quantity("csf-protein", "csf_protein", day, high * 2 if profile == "protein_only" else high / 2, "mg/dL",
                         referenceRange=[{"high": {"value": high, "unit": "mg/dL",
                                                   "system": "http://unitsofmeasure.org", "code": "mg/dL"}}])
            blasts = patient.get("circulating_blasts")
            if blasts in ("absent", "present"):
                quantity("blasts", "blood_blasts", day, float(ex["blasts_percent_when_present"]) if blasts == "present"
                         else 0, "%")
    return {"resourceType": "Bundle", "id": f"palsy-example-{pid}", "type": "collection", "entry": entries}
