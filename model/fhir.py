"""A FHIR R4 record as the findings of docs/design.md §2, through the one mapping table ``fhir_map.yaml``.

Pure: a bundle (a parsed JSON mapping) in, a :class:`FhirMapping` out, no HTTP and no clock unless no
``today`` is given. The table and the schema are those of one evidence folder (:func:`load_table` reads
the table and the schema beside it, ``priors/`` by default; :func:`map_bundle` takes both), so a copy of
``priors/`` with a new finding reads it from the record with no change here. The bundle is validated with
``fhir.resources`` (its R4B models, which read R4 for the resources palsy uses); the mapping then reads the
validated JSON:

- **whose**: every subject or patient reference (relative, absolute, to an entry, or an identifier) must
  be the bundle's one Patient, or a Patient joined to it by ``Patient.link`` (a merged record, named by its
  surviving record: :func:`~palsy.model.fhir_patients.the_patient`), else the bundle is refused; a clinical
  resource with no subject is ignored. A relative reference is read on its entry's server (R4 Bundle: the base of
  a RESTful fullUrl): one that so names this patient's id on a server that is not the Patient's (a bundle of two
  servers' entries, each with a Patient/1; or one server behind a proxy under two bases) is not read, never read
  as this patient's, and said (:func:`_tied`);
- the index **palsy** is the current Condition coded as facial palsy (ICD-10 G51.0, SNOMED CT) with the newest
  onset (older palsies are set aside: :func:`_palsy_episode`); its onset is the date every window counts from
  (without one no dose is "before onset", and tests and imaging are placed only after a recordedDate bound).
  Instants are compared where both times are given, else days: a stamp's own day, a UTC stamp's in the record's
  zone at that time (:class:`~palsy.model.fhir_dates.Zones`), one tap's results on one day (:func:`_on_tap_days`).
  An onset known only to a month or year is a range: an exposure counts only when inside its window for
  every day of it, and a test inside the range is not placed;
- **context**: age group from ``Patient.birthDate`` at that date; lineage (and remission where the code
  says it, from a current Condition only) from ICD-10(-CM), ICD-O-3 and SNOMED CT; **exposures** from the
  table's ``medication`` rows (an administration, or a completed order that is an order and not "do not
  perform") and ``procedure`` rows (a completed Procedure): each row names the finding and level it sets
  and the window (days or months before onset) it must fall in;
- **CSF**: the CSF Observations on or after onset are grouped into LPs by collection date; an LP with
  neither cytology nor flow (results pending) is left out and noted; the first LP's white cells and protein
  give ``csf_profile`` (not when the first LP is left out and a later one is read); red cells give
  ``traumatic``; blasts in the blood at the time of the first LP give ``circulating_blasts``;
- **MRI/CT** from coded DiagnosticReport conclusions after onset, the schema's precedence applied;
- any finding as palsy's own Observation (``urn:palsy:finding``), for what no standard code covers. Only a
  final (amended, corrected) Observation or report sets a finding.

**Whose record**, in the answer: the patient is named ``Patient/<id>`` (:func:`record_patient_id`), the
record's own reference to it, never the bare id: a record from a hospital's system is never one of palsy's
library cases (``priors/cases.yaml``, ``patients/*.yaml``), which are named by bare ids and answered with
themselves left out of the posterior (PSIS leave-one-out). Until 5 December a Patient whose id was a library
case's (``source-001``) was answered with that case left out, whatever its findings.

What no resource states stays unknown (``None``) and is listed in ``not_found``; a finding or level the
schema in use does not know (the schema is growing) is listed in ``not_in_schema``; every resource or code
not used is in ``ignored`` with the reason. Nothing is guessed: absence of a record is never "no". A
search read only in part (a ``next`` link, a ``total`` above its entries, or an OperationOutcome among its
entries with a warning, error or fatal issue, unless it says an empty search found nothing or is
``informational``: :func:`partial_searches`) is noted and listed in ``incomplete``;
what depends on the whole record (the first LP, the MRI's precedence) is then left unknown. Notes name a finding
by its identifier only as their leading ``finding: `` (which the service turns into the schema's label); inside a
sentence they give the schema's level labels and a measure's words (:data:`MEASURE_WORDS`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import paths
from palsy.model import safe_yaml as Y
from palsy.model import schema as SC
from palsy.model.fhir_dates import AGE_UNIT_YEARS, DAY_SECONDS, When, Zones, months_before, parse_when, shift, when_of, years_between
from palsy.model.fhir_dates import record_zone as record_zone  # the record's commonest zone, for callers of this module
from palsy.model.fhir_patients import REFERENCE as _REFERENCE
from palsy.model.fhir_patients import NotOnePatient, differences, the_patient
from palsy.model.fhir_patients import Who as _Who
from palsy.model.fhir_patients import no_history as _no_history
from palsy.model.fhir_patients import server_of as _server

TABLE_FILE = "fhir_map.yaml"
ROLES = ("palsy", "finding", "medication", "procedure", "lab", "result", "laterality", "imaging")
#: The roles of exposures: a row sets its ``finding`` to its ``level`` when the resource falls in its ``window``.
EXPOSURE_ROLES = ("medication", "procedure")
#: The windows and limits the mapping itself reads (an exposure row names its own window besides these).
WINDOWS = ("adult_from_years", "pleocytosis_above_per_uL", "traumatic_red_cells_at_least_per_uL", "blasts_days_from_lp",
           "palsy_same_episode_days", "own_finding_days_after_onset", "earliest_plausible_year")
#: The units an exposure's window may be counted in.
WINDOW_UNITS = ("days", "months")
MEASURES = ("csf_wbc", "csf_protein", "csf_rbc", "csf_cytology", "csf_flow", "csf_blasts", "blood_blasts")
#: The measures in words, as a note names them (never by their identifiers).
MEASURE_WORDS = {"csf_wbc": "CSF white-cell count", "csf_protein": "CSF protein", "csf_rbc": "CSF red-cell count",
                 "csf_cytology": "CSF cytology", "csf_flow": "CSF flow cytometry", "csf_blasts": "CSF blast count",
                 "blood_blasts": "blood blast count"}
#: How a patient mapped from a record is named: ``Patient/`` and the record's Patient.id (:func:`record_patient_id`).
RECORD_PREFIX = "Patient/"
CSF_MEASURES = ("csf_wbc", "csf_protein", "csf_rbc", "csf_cytology", "csf_flow", "csf_blasts")
RESOURCE_TYPES = ("Patient", "Condition", "Observation", "MedicationAdministration", "MedicationRequest",
                  "Procedure", "DiagnosticReport")
#: The resource types validated (those read; a Medication is read through a reference): the others are listed as
#: not read, and their subject checked, but a field of theirs that is invalid does not refuse the record.
VALIDATED_TYPES = (*RESOURCE_TYPES, "Medication", "Bundle")
#: The schema's precedence of MRI patterns (docs/design.md §2: "the first of mass > multiple > otomastoid > ...").
MRI_PRECEDENCE = ("mass", "multiple_nerve_or_leptomeningeal", "otomastoid_inflammation", "vii_viii_enhancement",
                  "facial_nerve_enhancement", "normal")
#: Findings a clinician examines at the bedside: "examine and enter" when the record does not say.
EXAM = ("forehead", "onset", "laterality", "eighth_nerve", "other_cranial_nerves", "peripheral_nerves", "vesicles",
        "otalgia", "otoscopy")
#: The statuses of an Observation or report whose result is read.
_ATTRIBUTE_STATUS_OK = {"final", "amended", "corrected"}
#: MedicationRequest intents that are orders (FHIR R4 medicationrequest-intent); a proposal, plan or option is not.
_ORDER_INTENTS = {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
#: Condition clinical statuses that say the condition is current (FHIR R4 condition-clinical).
_CURRENT = {"active", "recurrence", "relapse"}
#: The finding that says which leukaemia the patient has: read whatever the Condition's clinical status (a
#: leukaemia in remission is still that leukaemia), and the mark of a coded leukaemia.
LEUKAEMIA_FINDING = "lineage"
#: The deepest nesting of JSON objects and arrays read; the resources palsy reads nest about 10 deep, and
#: deeper input would exhaust the validator's recursion instead of being refused.
MAX_DEPTH = 64
_UNITS_PER_UL = {"/uL": 1.0, "/ul": 1.0, "/mm3": 1.0, "/mm[3]": 1.0, "10*6/L": 1.0, "cells/uL": 1.0, "{cells}/uL": 1.0,
                 "10*9/L": 1000.0, "10*3/uL": 1000.0,
                 # a cubic millimetre is a microlitre (Cerner displays "cells/mm3"); the micro sign as typed
                 "cells/mm3": 1.0, "{cells}/mm3": 1.0, "/\u00b5L": 1.0, "cells/\u00b5L": 1.0}


def _num(value: Any) -> float | None:
    """A JSON number as a float, None when it is not one or no float holds it (a valid FHIR decimal of 10^400, an
    int in Python, overflowed every float() it reached: exit 1, a review found)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


class FhirError(F.InputError):
    """A bundle that cannot be read: not FHIR R4, not valid, or about more than one patient (exit status 2)."""


# --- the table ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Row:
    """One code of the mapping table."""

    system: str
    code: str
    display: str
    role: str
    source: str
    finding: str | None = None
    level: str | None = None
    absent_level: str | None = None
    measure: str | None = None
    result: str | None = None
    side: str | None = None
    modality: str | None = None
    window: str | None = None
    note: str | None = None


@dataclasses.dataclass(frozen=True)
class Table:
    """The mapping table: rows by (system, code), the windows (with their units where declared), palsy's own
    code systems, and the schema the table was checked against (the one beside its file)."""

    rows: tuple[Row, ...]
    windows: dict[str, float]
    local: dict[str, str]
    examples: dict[str, Any]
    source: str
    schema: SC.Schema
    units: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The measures whose number of exactly 0 beside an interpretation the table reads negative is that negative
    #: (the table's ``zero_read_negative``: :func:`_reading`); empty when the table declares no such rule.
    zero_negative: frozenset[str] = frozenset()

    @functools.cached_property
    def by_code(self) -> dict[tuple[str, str], tuple[Row, ...]]:
        out: dict[tuple[str, str], list[Row]] = {}
        for r in self.rows:
            out.setdefault((r.system, r.code), []).append(r)
        return {k: tuple(v) for k, v in out.items()}

    def lookup(self, coding: Mapping[str, Any], role: str | None = None) -> tuple[Row, ...]:
        """The rows of one coding (``system``, ``code``), of ``role`` when given."""
        rows = self.by_code.get((str(coding.get("system") or ""), str(coding.get("code") or "")), ())
        return tuple(r for r in rows if role is None or r.role == role)

    def window(self, name: str) -> float:
        """The value of the window or limit ``name``."""
        return float(self.windows[name])

    def since(self, name: str, day: dt.date) -> dt.date:
        """The first day of the window ``name`` that ends on ``day`` (in the window's unit: days or months)."""
        n = int(self.window(name))
        return months_before(day, n) if self.units.get(name) == "months" else shift(day, -n)


def load_table(directory: str | Path | None = None) -> Table:
    """Read and check ``fhir_map.yaml`` (in ``directory``, else palsy's own ``priors/``) against the schema
    beside it (palsy's own when the folder has none), which the table then carries.

    Parameters
    ----------
    directory : str or Path, optional
        The evidence folder holding ``fhir_map.yaml``.

    Returns
    -------
    Table
        The rows, the windows with their units, palsy's own code systems, the examples, the schema and the
        measures whose 0 flagged negative reads negative (``zero_read_negative``).

    Raises
    ------
    findings.InputError
        Every problem of the table, each naming the row (or the window), the value and what is allowed.
    """
    path = Path(directory or paths.priors()) / TABLE_FILE
    try:
        doc = Y.load(path)
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise F.InputError(["the mapping table must be a mapping"], str(path))
    windows, units = {}, {}
    for name, entry in (doc.get("windows") or {}).items():
        if not (isinstance(entry, dict) and isinstance(entry.get("value"), int | float) and entry.get("source")):
            problems.append(f"windows.{name}: give value (a number) and source")
            continue
        windows[name] = entry["value"]
        if "unit" in entry:
            if entry["unit"] in WINDOW_UNITS:
                units[name] = str(entry["unit"])
            else:
                problems.append(f"windows.{name}: unit {Y.brief(entry['unit'])}; allowed: {', '.join(WINDOW_UNITS)}")
    for need in WINDOWS:
        if need not in windows:
            problems.append(f"windows.{need}: missing")
    zero = doc.get("zero_read_negative")
    zero_negative: frozenset[str] = frozenset()
    if zero is not None:
        measures = zero.get("measures") if isinstance(zero, dict) else None
        if not (isinstance(measures, list) and measures and all(m in CSF_RESULTS for m in measures) and zero.get("source")):
            problems.append(f"zero_read_negative: give measures (a list of {', '.join(CSF_RESULTS)}) and source")
        else:
            zero_negative = frozenset(str(m) for m in measures)
    local = doc.get("local") or {}
    for need in ("finding_system", "level_system", "code_system"):
        if not isinstance(local.get(need), str):
            problems.append(f"local.{need}: missing")
    rows = []
    fields = {f.name for f in dataclasses.fields(Row)}
    for i, raw in enumerate(doc.get("codes") or [], start=1):
        where = f"codes[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: not a mapping")
            continue
        extra = set(raw) - fields
        if extra:
            problems.append(f"{where}: unknown key(s) {sorted(extra)}")
            continue
        missing = [k for k in ("system", "code", "display", "role", "source") if not raw.get(k)]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        wrong = [k for k, v in raw.items() if isinstance(v, bool)]
        if wrong:
            problems.append(f"{where} ({raw.get('code')}): {', '.join(wrong)}: an unquoted yes or no (YAML reads it as "
                            f"{str(raw[wrong[0]]).lower()}); quote it: \"yes\" or \"no\"")
            continue
        row = Row(**{k: (str(v) if v is not None else None) for k, v in raw.items()})
        if row.role not in ROLES:
            problems.append(f"{where} ({row.code}): role {row.role!r}; allowed: {', '.join(ROLES)}")
        elif row.role == "finding" and not row.finding:
            problems.append(f"{where} ({row.code}): a finding row names its finding")
        elif row.role in EXPOSURE_ROLES and not (row.finding and row.level and row.window):
            problems.append(f"{where} ({row.code}): a {row.role} row names the finding and level it sets and its "
                            f"window (one of windows)")
        elif row.role == "lab" and row.measure not in MEASURES:
            problems.append(f"{where} ({row.code}): measure {row.measure!r}; allowed: {', '.join(MEASURES)}")
        elif row.role == "result" and row.result not in (*READ_RESULTS, "normal", "abnormal"):
            problems.append(f"{where} ({row.code}): result {row.result!r}; allowed: negative, positive (read), "
                            f"normal, abnormal (an interpretation read only against a value)")
        elif row.role == "laterality" and row.side not in ("left", "right", "both"):
            problems.append(f"{where} ({row.code}): side {row.side!r}; allowed: left, right, both")
        elif row.role == "imaging" and (row.modality not in ("MRI", "CT") or row.level not in MRI_PRECEDENCE):
            problems.append(f"{where} ({row.code}): modality MRI or CT and an mri level")
        rows.append(row)
    from palsy.model import crossref

    # the schema beside the table (a copy of priors/ with its own findings), else the one shipped
    schema = SC.read(path.parent) if (path.parent / "schema.yaml").exists() else SC.default()
    problems += crossref.fhir_map_file(doc, path, schema)
    if problems:
        raise F.InputError(problems, str(path))
    return Table(tuple(rows), windows, {k: str(v) for k, v in local.items()}, dict(doc.get("examples") or {}), str(path),
                 schema, units, zero_negative)


# --- the schema in use (it is growing: nothing here needs an edit when it does) ---------------------------

UNKNOWN = "unknown"


def _levels(schema: SC.Schema, finding: str) -> tuple[str, ...]:
    """Levels a patient may give for ``finding`` in ``schema`` (empty when it is not one of its findings)."""
    try:
        return tuple(schema.allowed(finding))
    except (KeyError, ValueError):
        return ()


def as_level(schema: SC.Schema, finding: str, raw: Any) -> Any:
    """A patient file's value as a level (YAML's unquoted yes/no booleans for the yes/no findings)."""
    try:
        return schema.as_level(finding, raw)
    except (KeyError, ValueError):
        return raw


@functools.lru_cache(maxsize=8)
def csf_new_form(schema: SC.Schema) -> bool:
    """Whether ``schema`` reads an LP as ``{cytology, flow, traumatic}`` (version 3) rather than
    ``{result, method}`` (tried on the schema's own parser)."""
    try:
        F.parse_patient({schema.lp.name: [{"cytology": "negative", "traumatic": "no"}]}, "schema probe", schema=schema)
    except (F.InputError, TypeError, ValueError):
        return False
    return True


# --- the result -----------------------------------------------------------------------------------------

@dataclasses.dataclass
class FhirMapping:
    """What a bundle says in the schema's terms.

    Attributes
    ----------
    patient : dict
        For :func:`palsy.model.findings.parse_patient`: ``id`` (:func:`record_patient_id`: ``Patient/<id>``, never
        a library case's id) and every finding found (nothing else).
    not_found : list of str
        Findings of the schema in use that no resource states (unknown, marginalised).
    ignored : list of dict
        ``{resource, code, why}`` for every resource or code not used.
    not_in_schema : list of str
        Findings (or levels) the mapping found that the schema in use does not know yet.
    notes : list of str
        Conflicts and partial codes, in words.
    onset : str or None
        The palsy's onset date (ISO) the windows count from (its first day when the record gives only a month
        or year; the notes then say so); None when there was none (today was used).
    has_palsy : bool
        Whether the record holds a current facial palsy Condition.
    has_leukaemia : bool
        Whether the record codes a leukaemia the table knows (with or without its lineage).
    incomplete : list of str
        Resource types of which a search was read only in part (a page of a longer result, or a search whose
        OperationOutcome says it is incomplete; ``unknown`` when the type cannot be told); the notes say which and
        what was left unknown because of it.
    record_id : str or None
        The record's own ``Patient.id`` (None when the Patient has none): what a CDS Hooks call's
        ``context.patientId`` names. Of Patients joined by ``Patient.link`` (a merged record), the surviving one.
    record_ids : list of str
        Every ``Patient.id`` that is this patient's, ``record_id`` first: the Patients joined to it by
        ``Patient.link`` too.
    merged_ids : list of str
        The ids a hook's ``context.patientId`` may name as this record: the bundle's own Patients' and those of this
        server's Patients a ``replaces``/``replaced-by`` link joins to them (not ``seealso`` or ``refer``:
        :attr:`palsy.model.fhir_patients.Who.merged_ids`).
    """

    patient: dict[str, Any]
    not_found: list[str]
    ignored: list[dict[str, str]]
    not_in_schema: list[str]
    notes: list[str]
    onset: str | None
    has_palsy: bool
    has_leukaemia: bool = False
    incomplete: list[str] = dataclasses.field(default_factory=list)
    record_id: str | None = None
    record_ids: list[str] = dataclasses.field(default_factory=list)
    merged_ids: list[str] = dataclasses.field(default_factory=list)

    def __iter__(self):  # (patient, not_found, ignored), as the issue names them
        return iter((self.patient, self.not_found, self.ignored))


class _Collector:
    """Findings as they are read against the schema in use, with their conflicts."""

    def __init__(self, schema: SC.Schema, zone: int | Zones = 0, today: dt.date | None = None) -> None:
        self.schema = schema
        self.values: dict[str, dict[str, list[str]]] = {}
        self.notes: list[str] = []
        self.ignored: list[dict[str, str]] = []
        self.not_in_schema: set[str] = set()
        self.leukaemia = False
        self.zone = zone  # the record's zones (or one offset, minutes east of UTC): the day a UTC stamp falls on
        self.today = today or dt.date.today()
        self.onset: When | None = None  # the episode's onset, when dated
        self.born: When | None = None  # the patient's birth date, when plausible
        self.states: list[_State] = []  # what current Conditions say of a state (remission), weighed at the end
        self.diagnosed: list[_Diagnosis] = []  # each leukaemia Condition's dates for its diagnosis
        self.unused_negative: list[tuple[dt.date | None, str]] = []  # negative CSF results left out: (day, why)
        self.unread_medications: dict[str, list[str]] = {}  # why a medicationReference was not read: the doses
        self.born_differ: str | None = None  # linked Patients' birth dates that disagree, in words (the span is read)
        self.read: list[tuple[str, str]] = []  # (resource, what was read from it): the CSF results and imaging

    def when(self, res: Mapping[str, Any], *fields: str) -> When | None:
        return when_of(res, self.zone, *fields)

    def offset(self, instant: int) -> int:
        """The offset (minutes east of UTC) in which ``instant`` is read: the record's zone at that time."""
        return self.zone.at(instant) if isinstance(self.zone, Zones) else self.zone

    def set(self, finding: str, level: str, why: str) -> None:
        self.leukaemia |= finding == "lineage"
        if finding not in self.schema.findings:
            self.not_in_schema.add(finding)
            return
        if level not in _levels(self.schema, finding):
            self.not_in_schema.add(f"{finding}: {level}")
            return
        self.values.setdefault(finding, {}).setdefault(level, []).append(why)

    def ignore(self, where: str, code: str, why: str) -> None:
        self.ignored.append({"resource": where, "code": code, "why": why})

    def level_words(self, finding: str, level: str) -> str:
        """A level as a note says it: its label in the schema in use ('both sides', never ``bilateral``); a level the
        schema does not label, in words."""
        try:
            return self.schema.level_label(finding, level)
        except KeyError:
            return level.replace("_", " ")

    def resolved(self) -> dict[str, str]:
        out = {}
        for finding, levels in self.values.items():
            if len(levels) == 1:
                out[finding] = next(iter(levels))
            elif finding == "mri":
                out[finding] = next(lv for lv in MRI_PRECEDENCE if lv in levels)
            else:
                said = "; ".join(f"{self.level_words(finding, lv)} ({', '.join(sorted(set(w)))})"
                                 for lv, w in levels.items())
                self.notes.append(f"{finding}: the record says more than one thing ({said}); left unknown")
        return out


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in (concept or {}).get("coding") or [] if isinstance(c, dict)] if isinstance(concept, dict) else []


def _code_text(c: Mapping[str, Any]) -> str:
    return f"{c.get('system') or '?'}|{c.get('code') or '?'}"


def _ref(res: Mapping[str, Any], where: str) -> str:
    return f"{res.get('resourceType')}/{res.get('id') or where}"


# --- validation -----------------------------------------------------------------------------------------

def validate(bundle: Any, source: str = "bundle") -> dict[str, Any]:
    """Check that ``bundle`` is a FHIR R4 Bundle (``fhir.resources`` R4B models) and return it.

    Raises
    ------
    FhirError
        Naming where each problem is (no values from the record are repeated).
    """
    if not isinstance(bundle, Mapping):
        raise FhirError([f"a FHIR Bundle must be a JSON object, got {type(bundle).__name__}"], source)
    if bundle.get("resourceType") != "Bundle":
        raise FhirError([f"resourceType: {Y.brief(bundle.get('resourceType'))}; a FHIR R4 Bundle is expected"], source)
    if _too_deep(bundle, MAX_DEPTH):
        raise FhirError([f"bundle: objects and arrays nested more than {MAX_DEPTH} deep; a FHIR R4 record of the "
                         f"resources palsy reads is far shallower"], source)
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(_for_validation(bundle))
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())) or 'bundle'}: {e.get('msg', 'invalid')}"
                    for e in exc.errors(include_input=False, include_url=False)[:20]]
        raise FhirError(problems or ["not a valid FHIR R4 Bundle"], source) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise FhirError([f"not a valid FHIR R4 Bundle ({type(exc).__name__})"], source) from None
    return dict(bundle)


#: Resources whose required time may be given as a primitive with only an extension (US Core's data-absent-reason
#: for "time unknown"): the R4B models refuse them, but one such resource is read as undated (ignored and listed),
#: never a reason to refuse the whole record.
_TIME_REQUIRED = {"MedicationAdministration": ("effectiveDateTime", "effectivePeriod")}


def _for_validation(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle as validated: a resource whose required time is only a data-absent extension is validated with
    a stand-in time (the mapping reads the bundle itself, where it stays undated)."""
    out = dict(bundle)
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return out
    fixed = []
    for entry in entries:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") == "Bundle":
            entry = {**entry, "resource": _for_validation(res)}
        elif isinstance(res, dict) and (fields := _TIME_REQUIRED.get(str(res.get("resourceType")))) and \
                not any(f in res for f in fields) and isinstance(res.get("_" + fields[0]), dict):
            entry = {**entry, "resource": {**res, fields[0]: "1901-01-01"}}
        elif isinstance(res, dict) and isinstance(res.get("resourceType"), str) and res["resourceType"] not in VALIDATED_TYPES:
            # a resource palsy does not read is not validated (an Encounter's empty display had refused a whole
            # record, a review found); it is listed as not read, and its subject is still checked
            entry = {**entry, "resource": {"resourceType": "Basic", "code": {"text": "not read by palsy"}}}
        fixed.append(entry)
    out["entry"] = fixed
    return out


def _too_deep(value: Any, limit: int) -> bool:
    """Whether JSON ``value`` nests objects and arrays more than ``limit`` deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, Mapping | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def resources(bundle: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(fullUrl or position, resource) of every entry, a searchset's nested Bundles flattened."""
    out = []
    for i, entry in enumerate(bundle.get("entry") or []):
        res = (entry or {}).get("resource")
        if not isinstance(res, dict):
            continue
        if res.get("resourceType") == "Bundle":
            out += resources(res)
        else:
            out.append((str(entry.get("fullUrl") or f"entry[{i}]"), res))
    return out


def _with_contained(entries: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The entries and each Observation a DiagnosticReport contains and names as a result (``#id``), directly or
    through a contained panel's ``hasMember``, with the report's subject where it has none (a laboratory may send
    a report's results contained: a positive CSF so sent had been called pending). Taken from the versions kept
    (:func:`_latest_versions`), so that an older version's results never come back."""
    out = list(entries)
    for where, res in entries:
        if res.get("resourceType") != "DiagnosticReport" or not isinstance(res.get("contained"), list):
            continue
        inner = {f"#{r.get('id')}": r for r in res["contained"]
                 if isinstance(r, dict) and r.get("resourceType") == "Observation" and isinstance(r.get("id"), str)}
        named = [r.get("reference") for r in res.get("result") or [] if isinstance(r, dict)]
        seen: set[str] = set()
        while named:
            ref = named.pop(0)
            if ref not in inner or ref in seen:
                continue
            seen.add(ref)
            obs = inner[ref]
            named += [m.get("reference") for m in obs.get("hasMember") or [] if isinstance(m, dict)]
            out.append((f"{where}{ref}", {**obs, "subject": obs.get("subject") or res.get("subject"),
                                          "id": f"{res.get('id') or 'report'}-{obs['id']}"}))
    return out


def _version_key(res: Mapping[str, Any]) -> tuple[int, float, str] | None:
    """How recent a version of a resource is: its ``meta.versionId`` (a number where it is one), else its
    ``meta.lastUpdated``; None when it says neither."""
    meta = res.get("meta") if isinstance(res.get("meta"), dict) else {}
    vid, updated = meta.get("versionId"), parse_when(meta.get("lastUpdated"))
    if vid is None and updated is None:
        return None
    number = int(vid) if isinstance(vid, str) and vid.isascii() and vid.isdigit() and len(vid) <= 18 else -1
    return (number, float(updated.at) if updated and updated.at is not None else -1.0, str(vid or ""))


def _latest_versions(entries: list[tuple[str, dict[str, Any]]], c: _Collector) -> list[tuple[str, dict[str, Any]]]:
    """One version of each resource (its server, type and id; the Patient's too): the latest by ``meta.versionId``,
    else ``meta.lastUpdated``. A history read or a merged feed holds several, and an older positive cytology had
    stood beside its newer entered-in-error version (a review, December 2026). Versions that cannot be ordered, or
    that say the same version, are all kept (their results, if they disagree, leave a finding unknown); two
    servers' resources of one id are two resources."""
    by_id: dict[tuple[str, str, str], list[int]] = {}
    for i, (where, res) in enumerate(entries):
        rt, rid = res.get("resourceType"), res.get("id")
        if isinstance(rt, str) and isinstance(rid, str) and rid:
            by_id.setdefault((_server(where, rt, rid), rt, rid), []).append(i)
    drop: set[int] = set()
    for (_, rt, rid), idx in by_id.items():
        keys = [_version_key(entries[i][1]) for i in idx]
        if len(idx) < 2 or any(k is None for k in keys):
            continue
        latest = max(keys)
        for j, i in enumerate(idx):
            if keys[j] < latest:
                drop.add(i)
                c.ignore(f"{rt}/{rid}", "-", f"an older version ({keys[j][2] or 'earlier lastUpdated'}) of a resource "
                                             f"the record holds in {len(idx)} versions: the latest is read")
    return [e for i, e in enumerate(entries) if i not in drop]


#: The statuses of a DiagnosticReport whose results are not read: withdrawn (its Observations keep theirs).
_REPORT_WITHDRAWN = ("entered-in-error", "cancelled")


def _report_results(where: str, res: Mapping[str, Any]) -> set[str]:
    """The keys by which a report names its results: as written (a contained one as the report's fullUrl#id,
    :func:`_with_contained`) and as ``Type/id``."""
    keys = set()
    for r in res.get("result") or []:
        text = r.get("reference") if isinstance(r, dict) else None
        if isinstance(text, str):
            text = where + text if text.startswith("#") else _no_history(text)
            keys.add(text)
            if (m := _REFERENCE.search(text)) and not text.startswith(where + "#"):
                keys.add(f"{m.group(1)}/{m.group(2)}")
    return keys


def _retracted_results(entries: list[tuple[str, dict[str, Any]]], table: Table,
                       c: _Collector) -> list[tuple[str, dict[str, Any]]]:
    """The entries without the Observations of a report entered in error or cancelled that no current report also
    names: a server does not carry a report's status to its results, and a withdrawn report's positive CSF had been
    read (a review, December 2026). Each is listed; the card says the report's results were withdrawn, a CSF
    result with its result."""
    withdrawn: dict[str, str] = {}
    current: set[str] = set()
    for where, res in entries:
        if res.get("resourceType") == "DiagnosticReport":
            keys = _report_results(where, res)
            if res.get("status") in _REPORT_WITHDRAWN:
                withdrawn.update({k: _ref(res, where) for k in keys})
            else:
                current |= keys
    for k in current:
        withdrawn.pop(k, None)
    if not withdrawn:
        return entries
    out, reports = [], []
    for where, res in entries:
        keys = {where, _no_history(where), f"{res.get('resourceType')}/{res.get('id')}"}
        report = next((withdrawn[k] for k in keys if k in withdrawn), None)
        if report is None or res.get("resourceType") != "Observation":
            out.append((where, res))
            continue
        why = f"a result of {report}, which is withdrawn (entered in error or cancelled)"
        measure = next((r.measure for cd in _codings(res.get("code")) for r in table.lookup(cd, "lab")), None)
        if measure in CSF_RESULTS:
            _csf_not_used(c, table, _ref(res, where), measure, res, why, advice=False)
        else:
            c.ignore(_ref(res, where), "-", why)
            reports.append(report)
    c.notes += [f"the results of {r} were not read: the report is withdrawn (entered in error or cancelled)"
                for r in dict.fromkeys(reports)]
    return out


_TYPE_IN_URL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/?(?:\?|$)")
#: R4's issue severities (issue-severity), and those that say a search did not return all it should have: an
#: ``information`` issue does not (a server's "no match", a hint), a warning (results withheld, suppressed) does.
ISSUE_SEVERITIES = ("fatal", "error", "warning", "information")
INCOMPLETE_SEVERITIES = ("fatal", "error", "warning")
_ISSUE_CODE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,39}")
#: R4 issue types that say nothing was withheld: ``informational`` ("unrelated to the processing success"), and, in a
#: search that returned no match, ``not-found`` (R4's own example of an empty search with a warning).
_NOTHING_WITHHELD = {"informational": False, "not-found": True}
#: Issue details that say a search found nothing (each only in a search that returned no match): HL7's
#: operation-outcome ``MSG_NO_MATCH``, and Epic's 4101 "Resource request returns no results", a warning Epic puts in
#: every empty searchset (its system ``urn:oid:1.2.840.114350.<organisation>.7.2.657369``, an organisation's OID in
#: the middle): read as "incomplete", every search a record had nothing for was said on the card as incomplete.
_NO_RESULTS = (re.compile(r"http://terminology\.hl7\.org/CodeSystem/operation-outcome\|MSG_NO_MATCH"),
               re.compile(r"urn:oid:1\.2\.840\.114350(?:\.\d{1,12}){1,12}\.7\.2\.657369\|4101"))


def is_outcome(value: Any) -> bool:
    """Whether ``value`` is an OperationOutcome resource (a server's errors and warnings)."""
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def outcome_issues(outcome: Mapping[str, Any]) -> list[tuple[str | None, str | None]] | None:
    """The (severity, code) of each issue of an OperationOutcome: the severity None for an issue that gives none of
    R4's (not an object, no severity, another word), the code None when it gives none palsy can show; None when
    ``issue`` is not a list of at least one issue (R4: 1..*): what the outcome says cannot be read."""
    issues = outcome.get("issue")
    if not isinstance(issues, list) or not issues:
        return None
    out: list[tuple[str | None, str | None]] = []
    for issue in issues:
        issue = issue if isinstance(issue, dict) else {}
        severity, code = issue.get("severity"), issue.get("code")
        out.append((severity if severity in ISSUE_SEVERITIES else None,
                    code if isinstance(code, str) and _ISSUE_CODE.fullmatch(code) else None))
    return out


def _withholds_nothing(issue: Any, code: str | None, empty: bool) -> bool:
    """Whether an issue says the search withheld nothing, whatever its severity: ``informational``, or, in a search
    with no match (``empty``), that nothing matched (:data:`_NOTHING_WITHHELD`, :data:`_NO_RESULTS`)."""
    if code in _NOTHING_WITHHELD and (empty or not _NOTHING_WITHHELD[code]):
        return True
    details = issue.get("details") if isinstance(issue, dict) else None
    codings = details.get("coding") if isinstance(details, dict) else None
    return empty and isinstance(codings, list) and any(
        isinstance(cd, dict) and any(p.fullmatch(f"{cd.get('system')}|{cd.get('code')}") for p in _NO_RESULTS)
        for cd in codings)


def issue_withholds_nothing(issue: Any, empty: bool) -> bool:
    """Whether an OperationOutcome's issue (a JSON object) says its search withheld nothing: an ``informational``
    issue, or, in a search that returned no match (``empty``), one saying that nothing matched (R4's ``not-found``,
    HL7's ``MSG_NO_MATCH``, Epic's 4101 warning in every empty searchset). The mapping reads a search with other
    warnings or errors as read only in part, and the service's card says only those (one rule for both)."""
    code = issue.get("code") if isinstance(issue, dict) else None
    return _withholds_nothing(issue, code if isinstance(code, str) else None, empty)


def _outcome_says(outcomes: list[dict[str, Any]], empty: bool) -> str | None:
    """What the OperationOutcomes among a search's entries say that makes it incomplete, in words (None when they say
    nothing of the kind: information only, or issues that say nothing was withheld: :func:`_withholds_nothing`; in a
    search of no match, ``empty``, that nothing matched). An outcome whose issues cannot be read may say anything: it
    counts."""
    said: list[str] = []
    for outcome in outcomes:
        issues = outcome_issues(outcome)
        if issues is None or any(s is None for s, _ in issues):
            said.append("an issue palsy cannot read")
        for (s, code), issue in zip(issues or (), outcome["issue"] if issues else (), strict=True):
            if s in INCOMPLETE_SEVERITIES and not _withholds_nothing(issue, code, empty):
                said.append(f"{s} ({code})" if code else str(s))
    return ", ".join(dict.fromkeys(said)) or None


def partial_searches(bundle: Mapping[str, Any], where: str = "the bundle",
                     context: Iterable[Mapping[str, Any]] = ()) -> list[tuple[str, frozenset[str]]]:
    """The searches (the bundle and the Bundles it holds) read only in part: one page of a longer result (a ``next``
    link, or a ``total`` above the matches given), or one whose entries hold an OperationOutcome (``search.mode:
    outcome``, or any OperationOutcome among them) with an issue of severity warning, error or fatal, or with issues
    that cannot be read (information only is not, nor issues that say nothing was withheld: :func:`_withholds_nothing`).
    Each as (what it is, in words; the resource types it holds, from its matches (a searchset's or a paged Bundle's
    only: an outcome in a collection answers none of its types), its links or the links of the entry that holds it
    (``context``): empty when they cannot be told)."""
    out = []
    entries = [e if isinstance(e, dict) else {} for e in bundle.get("entry") or []]
    outcomes = [e["resource"] for e in entries if is_outcome(e.get("resource"))]
    matches = [e for e in entries if ((e.get("search") or {}).get("mode") or "match") == "match"
               and not is_outcome(e.get("resource"))]
    own = [lk for lk in bundle.get("link") or [] if isinstance(lk, dict)]
    links = [*own, *context]
    total = bundle.get("total")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    has_next = any(lk.get("relation") == "next" for lk in own)
    paged = has_next or (isinstance(total, int) and total > len(matches))
    said = _outcome_says(outcomes, not matches)
    if paged or said:
        # an OperationOutcome among the entries of a Bundle that is not a search (a collection) answers no search of
        # its: the types it holds are not those of the search that failed (a validator's warning in a collection had
        # made "the Condition, Observation, Patient search" incomplete, never the DiagnosticReports)
        searched = paged or bundle.get("type") == "searchset"
        types = {str((e.get("resource") or {}).get("resourceType")) for e in matches if e.get("resource") and searched}
        types |= {m.group(1) for lk in links for m in [_TYPE_IN_URL.search(str(lk.get("url") or "").split("#")[0])]
                  if m}
        types -= {"Bundle", "OperationOutcome"}  # a Bundle's entries are its own searches: not a type of this one
        named = f"the {', '.join(sorted(types))} search" if types else "a search"
        count = f"{len(matches)} of {total} entries" if isinstance(total, int) else f"{len(matches)} entries"
        out.append((f"{named} ({where}: {count}{', a next page not read' if has_next else ''}"
                    f"{'; its OperationOutcome says ' + said if said else ''})", frozenset(types)))
    for i, entry in enumerate(entries):
        res = entry.get("resource")
        if isinstance(res, dict) and res.get("resourceType") == "Bundle":
            out += partial_searches(res, str(entry.get("fullUrl") or f"entry[{i}]"),
                                    [lk for lk in entry.get("link") or [] if isinstance(lk, dict)])
    return out


# --- the mapping ----------------------------------------------------------------------------------------

def map_bundle(bundle: Any, table: Table | None = None, today: dt.date | None = None,
               source: str = "bundle", *, schema: SC.Schema | None = None) -> FhirMapping:
    """Map a FHIR R4 Bundle to the findings of the schema in use.

    Parameters
    ----------
    bundle : mapping
        A parsed FHIR R4 Bundle (any type: collection, searchset; nested searchsets are read).
    table : Table, optional
        The mapping table (:func:`load_table` of the evidence folder in use); palsy's own by default.
    schema : Schema, optional
        The schema the findings are read against; by default the table's (the one beside its file). A
        finding or level it does not know is listed in ``not_in_schema``, not set.
    today : datetime.date, optional
        The reference date when the record has no palsy onset date (default: the machine's date).
    source : str
        Named in error messages.

    Returns
    -------
    FhirMapping
        The patient mapping, what was not found, what was ignored and why.

    Raises
    ------
    FhirError
        The bundle is not a valid FHIR R4 Bundle, has no Patient or several, or holds another patient's data.
    """
    bundle = validate(bundle, source)
    table = table or load_table()
    schema = schema or table.schema
    c = _Collector(schema, Zones.of(bundle), today)
    entries = _retracted_results(_with_contained(_latest_versions(resources(bundle), c)), table, c)
    try:
        who = the_patient(entries)
    except NotOnePatient as exc:
        raise FhirError(exc.problems, source) from None
    entries = _tied(entries, who, c)
    problems = _subject_problems(entries, who)
    if problems:
        raise FhirError(problems[:20], source)
    partial = _note_partial(partial_searches(bundle), c)

    if who.note:
        c.notes.append(who.note)
    c.born = _birth(who, table, c)
    palsies, onset = _palsy_episode(entries, table, c)
    # the exposures' windows end at the onset; without an onset date, the onset is some day up to today
    # (or up to the day the record bounds it by): a dose in that time may have followed it
    dated = onset if onset is not None and onset.lo > dt.date.min else None
    c.onset = onset
    window_end = onset or When(dt.date.min, c.today)
    if palsies and dated is None:
        c.notes.append("the facial palsy's onset date is not known" + (
            f" (only that it was on or before {onset.hi.isoformat()})" if onset else "")
            + ": an exposure before it cannot be told from one after it (left unknown); exam findings count when "
              "recorded recently; LPs and imaging are placed only when after the day the record bounds the onset by")
    if not palsies:
        c.notes.append("no current facial palsy Condition (ICD-10 G51.0 or SNOMED CT) in the record: its onset is "
                       "not known, so an exposure before it cannot be told from one after it (left unknown), and "
                       "LPs and imaging are not placed")
    _age_group(window_end, table, c)

    labs: list[tuple[When, str, dict[str, Any], str]] = []
    medications = _medications(entries)
    for where, res in entries:
        rt = res.get("resourceType")
        ref = _ref(res, where)
        if rt == "Patient":
            continue
        if rt not in RESOURCE_TYPES:
            c.ignore(ref, "-", f"resource type {rt} is not read")
        elif not _has_subject(res):
            c.ignore(ref, "-", "no subject: whose record it is cannot be told")
        elif rt == "Condition":
            _condition(res, ref, table, c)
        elif rt in ("MedicationAdministration", "MedicationRequest"):
            _medication(res, ref, table, c, window_end, medications)
        elif rt == "Procedure":
            _procedure(res, ref, table, c, window_end)
        elif rt == "DiagnosticReport":
            _report(res, ref, table, c, onset)
        elif rt == "Observation":
            labs += _observations(res, ref, table, c)
    _say_unread_medications(c)
    _weigh_states(c)
    if dated is not None:
        _diagnosed_after(c, dated)
    lps = _lumbar_punctures(labs, table, c, onset, first_known=not partial & {"Observation", UNKNOWN})
    if partial & {"DiagnosticReport", UNKNOWN}:
        _keep_only_the_first_in_precedence(c)
    _say_linked_results(entries, who, c)
    values = c.resolved()
    patient: dict[str, Any] = {"id": record_patient_id(who.id)}
    patient.update({k: v for k, v in values.items()})
    if lps:
        patient[schema.lp.name] = lps
    not_found = [f for f in schema.findings if f not in patient]
    return FhirMapping(patient, not_found, c.ignored, sorted(c.not_in_schema), c.notes,
                       dated.lo.isoformat() if dated else None, bool(palsies), c.leukaemia, sorted(partial),
                       who.id, list(who.ids), list(who.merged_ids))


def record_patient_id(fhir_id: Any) -> str:
    """The id of the patient of a record whose Patient.id is ``fhir_id``: ``Patient/<id>`` (``Patient/(no id)``
    when it has none). A FHIR id has no ``/`` (R4: ``[A-Za-z0-9.-]{1,64}``, which the bundle's validation
    checks), so the name never reads as a bare id: a record is never taken for one of palsy's library cases,
    which are answered with themselves left out (a record whose Patient.id was ``source-001`` was, until
    5 December, whatever its findings)."""
    return RECORD_PREFIX + (str(fhir_id) if fhir_id else "(no id)")


def _plausible(w: When | None, table: Table, c: _Collector, what: str, ref: str = "Patient") -> When | None:
    """``w`` when it can be a real date of this record: not before the table's earliest plausible year (a
    0001-01-01 is a "no date" sentinel) and not after today; else None, noted."""
    if w is None:
        return None
    earliest = int(table.window("earliest_plausible_year"))
    if w.hi.year < earliest or w.lo > c.today:
        c.notes.append(f"{what} ({ref}) is dated {w.lo.isoformat()}: "
                       f"{'before ' + str(earliest) if w.hi.year < earliest else 'after today'}, not a real date "
                       f"(a system's 'no date' value or an error): not read as a date")
        return None
    return w


def _birth(who: _Who, table: Table, c: _Collector) -> When | None:
    """The patient's birth date: the one its Patient gives, or its linked Patients give (one given as a year only
    agrees with a day of that year). Linked Patients that give different dates: the surviving record's when its
    ``replaced-by``/``replaces`` links single it out (R4 link-type: the other "must no longer be used", and a merge is
    often made to correct a duplicate's demographics), said; else the span of their dates, said, so that the age
    group and a reference range's age are read only where every date gives the same one (:func:`_age_group`;
    until s17 no date was read, and an age group that every date gave was lost)."""
    many = len(who.patients) > 1
    got = [(key, str(p.get("birthDate")), w) for key, p in who.patients
           if (w := _plausible(parse_when(p.get("birthDate")), table, c, "the birth date",
                               who.name(key) if many else "Patient"))]
    if not got:
        return None
    narrow = min((w for _, _, w in got), key=lambda w: w.hi.toordinal() - w.lo.toordinal())
    if all(w.lo <= narrow.lo and narrow.hi <= w.hi for _, _, w in got):
        return narrow
    said = ", ".join(f"{who.name(key)} {text}" for key, text, _ in got)
    survivor = next((w for key, _, w in got if key == who.key), None) if who.clear else None
    if survivor is not None:
        c.notes.append(f"age_group: the linked Patient records give different birth dates ({said}): the surviving "
                       f"record's, {who.name(who.key)}, is read (the replaced record is no longer used; a merge may "
                       f"have corrected its date)")
        return survivor
    c.born_differ = said
    return When(min(w.lo for _, _, w in got), max(w.hi for _, _, w in got))


def _say_linked_results(entries: list[tuple[str, dict[str, Any]]], who: _Who, c: _Collector) -> None:
    """For each linked Patient whose name, gender or birth date differ from the record's
    (:func:`~palsy.model.fhir_patients.differences`), say so and name the CSF results and imaging read from
    resources filed under it. R4 link-type: linked Patients concern the same person and their data "might ...
    contradict", so they are read; a link made in error is then seen on the card (a seealso to another person's
    record, born 25 years later, had its positive cytology read with nothing to show whose it was, a review found)."""
    patients = dict(who.patients)
    if len(patients) < 2:
        return
    base = who.key if who.key in patients else who.patients[0][0]
    owner: dict[str, Any] = {}
    for where, res in entries:
        for field in ("subject", "patient"):
            if res.get("resourceType") != "Patient" and (key := who.key_of(res.get(field), where)) is not None:
                owner[_ref(res, where)] = key
                break
    for key, res in who.patients:
        differ = differences(patients[base], res) if key != base else []
        if not differ:
            continue
        read = list(dict.fromkeys(f"{what} ({ref})" for ref, what in c.read
                                  if owner.get(ref.split(" component ")[0]) == key))
        c.notes.append(f"{who.name(key)}, linked to {who.name(base)}, gives another "
                       f"{', '.join(differ[:-1]) + ' and ' if len(differ) > 1 else ''}{differ[-1]}: " +
                       (f"read from its resources: {'; '.join(read)}" if read else
                        "no CSF result or imaging was read from its resources") +
                       "; if the link joins two people, these are another patient's: check the link")


def _age_span(age: Any, born: When | None) -> When | None:
    """The days an Age (an onsetAge, a Range's low or high) names with the birth date: the year or month of life it
    names (an age in whole years or months; other units, a comparator, or no birth date: None)."""
    if not (isinstance(age, dict) and born):
        return None
    per = AGE_UNIT_YEARS.get(str(age.get("code") or age.get("unit") or ""))
    # a float the months' arithmetic can hold (1.5e308 years overflowed it: exit 1); an age no one reaches then
    # gives a date beyond the calendar, which the caller's plausibility check does not read
    years = _num(age.get("value"))
    if per not in (1.0, 1 / 12) or years is None or age.get("comparator") or years < 0 \
            or not math.isfinite(years * per * 12):
        return None
    months = int(round(years * per * 12))
    step = 12 if per == 1.0 else 1  # an age in whole years or months: the year or month of life it names
    lo = months_before(born.lo, -months)
    hi = shift(months_before(born.hi, -(months + step)), -1)
    return When(lo, max(lo, hi))


def _onset_of(res: Mapping[str, Any], ref: str, table: Table, c: _Collector) -> tuple[When | None, str]:
    """When a palsy Condition began, as a range of days (``lo`` dt.date.min when only an upper bound is known),
    and how it was read: onsetDateTime; onsetPeriod (start to end); onsetAge with the birth date; else only
    an upper bound: onsetPeriod.end, or recordedDate (the palsy existed when it was recorded)."""
    z = c.zone
    got = _plausible(parse_when(res.get("onsetDateTime"), z), table, c, "the facial palsy's onset", ref)
    if got:
        return got, "onsetDateTime"
    period = res.get("onsetPeriod") if isinstance(res.get("onsetPeriod"), dict) else {}
    start = _plausible(parse_when(period.get("start"), z), table, c, "the facial palsy's onset", ref)
    end = _plausible(parse_when(period.get("end"), z), table, c, "the facial palsy's onset period's end", ref)
    if start:
        return When(start.lo, max(start.hi, end.hi) if end else start.hi, start.at if not end else None), "onsetPeriod"
    span = _age_span(res.get("onsetAge"), c.born)
    got = _plausible(span, table, c, "the facial palsy's onset (from its onsetAge)", ref) if span else None
    if got:
        return got, "onsetAge"
    bound = end or _plausible(parse_when(res.get("recordedDate"), z), table, c, "the facial palsy's recordedDate", ref)
    if bound:
        return When(dt.date.min, bound.hi), "recordedDate" if not end else "onsetPeriod.end"
    if res.get("onsetString"):
        c.notes.append(f"the facial palsy's onset ({ref}) is given only as text (onsetString): not read as a date")
    return None, ""


def _palsy_episode(entries: list[tuple[str, dict[str, Any]]], table: Table,
                   c: _Collector) -> tuple[list[dict[str, Any]], When | None]:
    """This episode's facial-palsy Conditions, with their laterality set, and the episode's onset.

    The episode is the current palsy: the newest onset among the current (usable) palsy Conditions, with
    every other current one whose onset may be within ``palsy_same_episode_days`` before it (a second side
    or a second record of the same palsy). The others are an earlier palsy: set aside, listed, and neither
    their side nor their onset is read. A palsy with no date at all is set aside when another is dated.
    The onset is the episode's earliest (its first and last possible day); None when no Condition dates it
    (an upper bound alone, e.g. recordedDate, gives ``lo`` dt.date.min)."""
    found: list[_Palsy] = []
    for where, res in entries:
        if res.get("resourceType") != "Condition" or not _has_subject(res):
            continue
        rows = [r for cd in _codings(res.get("code")) for r in table.lookup(cd, "palsy")]
        if not rows:
            continue
        ref, code = _ref(res, where), _code_text(_codings(res.get("code"))[0])
        why = _condition_unusable(res)
        if why:
            c.ignore(ref, code, why)
            continue
        onset, how = _onset_of(res, ref, table, c)
        found.append((res, ref, code, onset, how))
    dated = [f for f in found if f[3] is not None]
    episode = found
    if dated:
        newest = max(f[3].lo for f in dated)
        gap = int(table.window("palsy_same_episode_days"))
        first = shift(newest, -gap)
        episode = [f for f in dated if f[3].hi >= first]
        for f in found:
            if any(f is e for e in episode):
                continue
            why = (f"an earlier facial palsy (onset {'on or before ' if f[3].lo == dt.date.min else ''}"
                   f"{(f[3].hi if f[3].lo == dt.date.min else f[3].lo).isoformat()}), more than {gap} days before "
                   f"this one's ({newest.isoformat()}): not this episode" if f[3] is not None else
                   f"a facial palsy with no date, beside a dated one ({newest.isoformat()}): not placed in this episode")
            c.ignore(f[1], f[2], why)
            c.notes.append(f"set aside: {f[1]}: {why}; its side and onset are not read")
    _laterality(episode, table, c)
    palsies = [f[0] for f in episode]
    starts = [f for f in episode if f[3] is not None]
    if not starts:
        return palsies, None
    # the episode starts at its earliest onset, which lies between the earliest first and the earliest last day; a
    # record that only bounds it (recordedDate) does not unsettle a dated onset on or before its bound (a second
    # record of the same palsy, made two days later, had erased the onset and with it a dose a week before)
    real = [f for f in starts if f[3].lo > dt.date.min]
    hi = min(f[3].hi for f in starts)
    lo = min(f[3].lo for f in real) if real and hi >= min(f[3].lo for f in real) else dt.date.min
    ats = [f[3].at for f in starts if f[3].at is not None and f[3].lo == lo and f[3].hi == hi]
    onset = When(lo, hi, min(ats) if ats and lo == hi else None)
    for f in starts:  # said of the record the onset is read from (not of one that only agrees with it)
        if f[4] in ("recordedDate", "onsetPeriod.end", "onsetAge") and (f[3].lo, f[3].hi) == (lo, hi):
            c.notes.append(f"the facial palsy's onset is read from its {f[4]} ({f[1]})")
    if lo != hi and lo > dt.date.min:
        c.notes.append(f"the facial palsy's onset is known only to between {lo.isoformat()} and "
                       f"{hi.isoformat()}: an exposure counts only when it is in its window for every day of "
                       f"that range, and an LP or imaging in that range cannot be placed")
    return palsies, onset


#: A facial-palsy Condition of the episode as :func:`_palsy_episode` reads it: (resource, reference, code, onset, how
#: the onset was read).
_Palsy = tuple[dict[str, Any], str, str, When | None, str]


def _laterality(episode: list[_Palsy], table: Table, c: _Collector) -> None:
    """``laterality`` from the episode's ``bodySite`` sides: both sides given (by one record or two), bilateral; one
    side, unilateral, unless a record that gives no side may be the other side. A side-less record is read as the same
    palsy as one that gives a side only when the record ties them (:func:`_same_palsy`: dated to the same day, or made
    in the same encounter), said; else it may restate that palsy or record the other side: left unknown, said with
    what to enter (a follow-up encounter diagnosis without a bodySite had made the side unknown with no word of it;
    read as the same palsy when recorded within ``palsy_same_episode_days``, as s17 first did, a second side recorded
    a week later was read unilateral, a review found: a bilateral, sequential palsy is a sign of infiltration)."""
    said = [{r.side for bs in f[0].get("bodySite") or [] for cd in _codings(bs) for r in table.lookup(cd, "laterality")}
            for f in episode]
    sided = [f for f, got in zip(episode, said, strict=True) if got]
    unsided = [f for f, got in zip(episode, said, strict=True) if not got]
    sides = set().union(*said)
    if "both" in sides or {"left", "right"} <= sides:
        c.set("laterality", "bilateral", "facial palsy on both sides")
        return
    if not sides:
        return
    same, other = [], []
    for f in unsided:
        why = next(((g, w) for g in sided if (w := _same_palsy(f, g)) is not None), None)
        if why is None:
            other.append(f[1])
        else:
            same.append(f"{f[1]} gives no side: read as the same palsy as {why[0][1]}, whose side is read ({why[1]})")
    if other:
        c.notes.append(f"laterality: {', '.join(other)} {'gives' if len(other) == 1 else 'give'} no side, and the "
                       f"record does not tie {'it' if len(other) == 1 else 'them'} to the palsy whose side is given "
                       f"({', '.join(f[1] for f in sided)}: the same onset day, or the same encounter): it may restate "
                       f"that palsy or record the other side; left unknown: enter laterality (bilateral if the other "
                       f"side, unilateral if the same)")
        return
    c.set("laterality", "unilateral", "facial palsy on one side")
    c.notes += [f"laterality: {s}" for s in same]


def _same_palsy(a: _Palsy, b: _Palsy) -> str | None:
    """Why two facial-palsy records are records of one palsy, in words (None when they may be two: the other side):
    made in the same encounter (``Condition.encounter``), or both dated to one day (their onsets; or one without an
    onset of its own, only its recordedDate or an onsetPeriod's end, on the other's onset day)."""
    enc = [e.get("reference") if isinstance(e := f[0].get("encounter"), dict) else None for f in (a, b)]
    if isinstance(enc[0], str) and enc[0] and _no_history(enc[0]) == _no_history(str(enc[1])):
        return f"the same encounter, {enc[0]}"
    wa, wb = a[3], b[3]
    if wa is None or wb is None:
        return None
    if wa.lo == wa.hi == wb.lo == wb.hi and wa.lo > dt.date.min:
        return f"the same onset day, {wa.lo.isoformat()}"
    for bound, dated in ((a, b), (b, a)):
        wbound, wdated = bound[3], dated[3]
        if wbound.lo == dt.date.min and wdated.lo == wdated.hi == wbound.hi:
            return (f"{bound[1]} has no onset of its own, only its {bound[4]} {wbound.hi.isoformat()}, the day of "
                    f"{dated[1]}'s onset")
    return None


def _age_group(onset: When, table: Table, c: _Collector) -> None:
    born = c.born
    if not born:
        return
    days = {onset.hi} if onset.lo == dt.date.min else {onset.lo, onset.hi}
    if born.lo > min(days):
        c.notes.append(f"age_group: the birth date ({born.lo.isoformat()}) is after the palsy's onset: not read")
        return
    adult = table.window("adult_from_years")
    ages = {years_between(b, day) >= adult for b in (born.lo, born.hi) for day in days}
    differ = f"age_group: the linked Patient records give different birth dates ({c.born_differ})"
    if len(ages) == 1:
        level = "adult" if ages.pop() else "child"
        c.set("age_group", level, "birth date")
        if c.born_differ:
            c.notes.append(f"{differ}, and each gives {level} at the palsy's onset: read")
    elif c.born_differ:
        c.notes.append(f"{differ}, which give different age groups at the palsy's onset, and no replaced-by or "
                       f"replaces link names the surviving record: left unknown (and a reference range by age); "
                       f"enter it")
    else:
        c.notes.append("age_group: the birth date (or the onset) is too imprecise to tell child from adult at onset")


def _note_partial(searches: list[tuple[str, frozenset[str]]], c: _Collector) -> set[str]:
    """Note each search read only in part (a page of more, or one whose OperationOutcome says it is incomplete:
    :func:`partial_searches`); the resource types whose record is incomplete (``unknown`` when a search's type
    cannot be told: every type is then taken as incomplete)."""
    partial: set[str] = set()
    for what, types in searches:
        partial |= types or {UNKNOWN}
        c.notes.append(f"incomplete record: {what}; what it did not return is unknown, not absent")
    if partial & {"Condition", UNKNOWN}:
        c.notes.append("incomplete record: the palsy's episode is the newest among the Conditions read; a newer "
                       "one the search did not return would move every window")
    return partial


def _keep_only_the_first_in_precedence(c: _Collector) -> None:
    """With a report search read only in part, an MRI level stands only when none could take precedence over it."""
    levels = c.values.get("mri") or {}
    if levels and MRI_PRECEDENCE[0] not in levels:
        del c.values["mri"]
        c.notes.append("mri: a report the search did not return could take precedence over the ones read; left unknown")


def _tied(entries: list[tuple[str, dict[str, Any]]], who: _Who, c: _Collector) -> list[tuple[str, dict[str, Any]]]:
    """The entries without those whose subject or patient names this patient's id on a server that is not the
    Patient's (:meth:`~palsy.model.fhir_patients.Who.untied`: a relative reference in an entry of another server,
    R4 reading it on that server): each is listed and not read, never read as this patient's, and the card says
    so once for each reason, with their number and types (one of them may be this patient's positive cytology)."""
    out, untied = [], {}
    for where, res in entries:
        why = next(((field, w) for field in ("subject", "patient") if res.get("resourceType") != "Patient"
                    and (w := who.untied(res.get(field), where)) is not None), None)
        if why is None:
            out.append((where, res))
            continue
        c.ignore(_ref(res, where), "-", f"its {why[0]} {why[1]}: not read as this patient's")
        untied.setdefault(why, []).append(str(res.get("resourceType")))
    for (field, why), types in untied.items():
        n = len(types)
        c.notes.append(f"whose record: {n} resource{'s' if n > 1 else ''} ({', '.join(sorted(set(types)))}) not read as "
                       f"this patient's: {'their' if n > 1 else 'its'} {field} {why}")
    return out


def _subject_problems(entries: list[tuple[str, dict[str, Any]]], who: _Who) -> list[str]:
    """Every resource palsy reads whose subject is not the bundle's Patient, and every other resource whose
    subject or patient is another Patient, each in words."""
    problems = []
    for where, res in entries:
        rt = res.get("resourceType")
        if rt == "Patient":
            continue
        for field in ("subject", "patient"):
            value = res.get(field)
            why, other_patient = (None, False) if value is None else who.problem(value, where)
            if why and (rt in RESOURCE_TYPES or other_patient):
                problems.append(f"{rt} ({where}): its {field} {why}; give one patient's record")
    return problems


def _has_subject(res: Mapping[str, Any]) -> bool:
    return isinstance(res.get("subject"), dict) or isinstance(res.get("patient"), dict)


def _condition_unusable(res: Mapping[str, Any]) -> str | None:
    ver = {cd.get("code") for cd in _codings(res.get("verificationStatus"))}
    if "entered-in-error" in ver:
        return "entered in error"
    if ver & {"refuted"}:
        return "refuted"
    if ver & {"unconfirmed", "provisional", "differential"}:
        return "not confirmed"
    return _not_current(res)


def _clinical(res: Mapping[str, Any]) -> set[str]:
    return {str(cd.get("code")) for cd in _codings(res.get("clinicalStatus"))}


def _not_current(res: Mapping[str, Any]) -> str | None:
    """Why a Condition is not current (None when it is, or when its record does not say)."""
    clin = _clinical(res)
    if clin & _CURRENT:
        return None
    if "remission" in clin:
        return "clinicalStatus remission: not current"
    if clin & {"inactive", "resolved"}:
        return "not current (inactive or resolved)"
    if not clin and any(k.startswith("abatement") for k in res):
        return "not current (it has an abatement)"
    return None


@dataclasses.dataclass(frozen=True)
class _State:
    """What one current Condition says of a state (e.g. remission), to be weighed against the others."""

    finding: str
    level: str | None  # None: the code says a state the schema's levels cannot hold (e.g. in remission, phase not said)
    day: dt.date | None  # the latest of its recordedDate and onset: when the record said it
    explicit: bool  # its clinicalStatus says it is current (not merely left out)
    ref: str
    code: str
    display: str
    note: str | None


@dataclasses.dataclass(frozen=True)
class _Diagnosis:
    """A leukaemia Condition's dates for its diagnosis: the first day its onset can be (None when its onset gives no
    first day); the days it gives that the diagnosis was on or before (an onsetPeriod's end, an onsetRange's high age,
    its abatement, its recordedDate), each with its words; and the onset[x] it gives in a form that cannot be read as
    days (onsetString; an age without a birth date), None when there is none."""

    ref: str
    first: dt.date | None
    by: tuple[tuple[str, dt.date], ...]
    unread: str | None


def _diagnosis(res: Mapping[str, Any], ref: str, table: Table, c: _Collector) -> _Diagnosis:
    """A leukaemia Condition's dates (:class:`_Diagnosis`), each form of onset[x] read as the bounds it gives, as
    :func:`_onset_of` reads the palsy's (until s17 only onsetDateTime and an onsetPeriod's start were read, so an
    onsetAge of 30 years was "no onset", and its recordedDate after the palsy said the leukaemia was diagnosed after
    it, a review found)."""
    first, unread = None, None
    by: list[tuple[str, dt.date]] = []
    period = res.get("onsetPeriod") if isinstance(res.get("onsetPeriod"), dict) else None
    rng = res.get("onsetRange") if isinstance(res.get("onsetRange"), dict) else None
    if (w := c.when(res, "onsetDateTime")) is not None:
        first = w.lo
    elif period is not None:
        start = parse_when(period.get("start"), c.zone)
        end = _plausible_day(parse_when(period.get("end"), c.zone), table, c)
        first = start.lo if start else None
        by += [("its onsetPeriod's end", end.lo)] if end else []
    elif "onsetAge" in res:
        span = _age_span(res.get("onsetAge"), c.born)
        first = span.lo if span else None
        unread = None if span else "onsetAge (an age palsy cannot read, or no birth date)"
    elif rng is not None:
        low, high = _age_span(rng.get("low"), c.born), _age_span(rng.get("high"), c.born)
        first = low.lo if low else None
        by += [("its onsetRange's high age", high.lo)] if high else []
        unread = None if low or high else "onsetRange (ages palsy cannot read, or no birth date)"
    elif res.get("onsetString"):
        unread = "onsetString"
    abated = c.when(res, "abatementDateTime", "abatementPeriod")
    if abated is None and (span := _age_span(res.get("abatementAge"), c.born)) is not None:
        abated = span
    if (abated := _plausible_day(abated, table, c)) is not None:
        by.append(("its abatement", abated.lo))
    if (recorded := _plausible_day(c.when(res, "recordedDate"), table, c)) is not None:
        by.append(("its recordedDate", recorded.lo))
    return _Diagnosis(ref, first, tuple(by), unread)


def _plausible_day(w: When | None, table: Table, c: _Collector) -> When | None:
    """``w`` when it can be a real date of this record (not before the table's earliest plausible year, not after
    today), silently else: a Condition's recordedDate that only bounds another date."""
    return w if w is not None and w.hi.year >= int(table.window("earliest_plausible_year")) and w.lo <= c.today else None


def _diagnosed_after(c: _Collector, palsy: When) -> None:
    """Say when the record dates the leukaemia's diagnosis after the palsy's onset: some Condition's onset is, every
    onset given is, and no Condition may be dated before the palsy (one whose onset is given in a form that cannot be
    read as days, one with no date at all, or one that gives a day on or before the palsy's that the diagnosis was on
    or before: an onsetPeriod's end, an abatement, a recordedDate). A Condition that gives only such a day after the
    palsy bounds its diagnosis from above and does not unsettle the others (an encounter diagnosis without an onset
    had silenced the note, a second review found). Said, not set: a Condition's onset may be a transfer's, not the
    diagnosis."""
    firsts = [d.first for d in c.diagnosed if d.first is not None]
    if not firsts or min(firsts) <= palsy.hi:
        return
    if any(d.unread is not None or (d.first is None and not d.by) or any(day <= palsy.hi for _, day in d.by)
           for d in c.diagnosed):
        return
    bounded = sorted({f"{d.ref} gives no onset, only {min(d.by, key=lambda b: b[1])[0]} "
                      f"({min(day for _, day in d.by).isoformat()})" for d in c.diagnosed if d.first is None})
    also = f"; {', '.join(bounded)}, after the palsy's onset too" if bounded else ""
    # the schema's population is a palsy in a known leukaemia; one that led to the diagnosis is outside it (a review
    # found such a record answered with no word of it)
    c.notes.append(f"every leukaemia Condition dates the diagnosis after the palsy's onset ({palsy.lo.isoformat()}): "
                   f"the earliest onset given is {min(firsts).isoformat()}{also}. If the palsy led to the diagnosis, the "
                   f"patient is outside the model's population; enter the status when the palsy started")


def _condition_day(res: Mapping[str, Any], table: Table, c: _Collector) -> dt.date | None:
    earliest = int(table.window("earliest_plausible_year"))
    days = [w.hi for f in ("recordedDate", "onsetDateTime", "onsetPeriod")
            if (w := when_of(res, c.zone, f)) and earliest <= w.hi.year and w.lo <= c.today]
    return max(days) if days else None


def _condition(res: Mapping[str, Any], ref: str, table: Table, c: _Collector) -> None:
    codings = _codings(res.get("code"))
    ver = {cd.get("code") for cd in _codings(res.get("verificationStatus"))}
    stale = _not_current(res)
    in_remission = "remission" in _clinical(res)
    used = False
    for cd in codings:
        rows = table.lookup(cd)
        if any(r.role == "palsy" for r in rows):
            used = True
            continue
        frows = [r for r in rows if r.role == "finding"]
        if not frows:
            continue
        used = True
        if "entered-in-error" in ver:
            c.ignore(ref, _code_text(cd), "entered in error")
            continue
        for r in frows:
            if "refuted" in ver:
                if r.absent_level:
                    c.set(r.finding, r.absent_level, f"{r.display} refuted")
                continue
            if ver & {"unconfirmed", "provisional", "differential"}:
                c.ignore(ref, _code_text(cd), "not confirmed")
                continue
            if r.finding == LEUKAEMIA_FINDING:  # which leukaemia it is: whatever the clinical status
                _say(r, c)
                c.diagnosed.append(_diagnosis(res, ref, table, c))
                continue
            # a state (e.g. remission) is read only from a current Condition, and weighed against the others
            # (_weigh_states): the most recent statement stands. A leukaemia whose clinicalStatus is remission
            # says "in remission" (on or off treatment not said) whatever its code's fifth character
            if stale and not in_remission:
                c.ignore(ref, _code_text(cd), f"{r.finding}: {stale}")
                continue
            level, note = r.level, r.note
            if stale:
                c.ignore(ref, _code_text(cd), f"{r.finding}: {stale}" + (f": {r.level} not read" if r.level else ""))
                level, note = None, "its Condition's clinicalStatus is remission (on or off treatment not said): enter it"
            # explicit: its clinicalStatus says what holds now (active, recurrence, relapse, or remission itself)
            c.states.append(_State(r.finding, level, _condition_day(res, table, c),
                                   bool(_clinical(res)) and (not stale or in_remission),
                                   ref, _code_text(cd), r.display, note))
    if not used:
        for cd in codings or [{}]:
            c.ignore(ref, _code_text(cd), "code not in the mapping table")


def _weigh_states(c: _Collector) -> None:
    """Each state finding (remission) from the current Conditions that say it: one whose clinicalStatus says what
    holds now (remission itself included) stands over an older one with none (an encounter diagnosis, a statement
    of its day: a two-year-old induction diagnosis had overridden the problem list's "in remission", a review
    found); among those, the most recent statement stands (the latest recordedDate or onset); a newer statement
    without a status that says otherwise leaves the finding unknown, both said (a problem list never updated had
    outranked this year's diagnosis, a second review found); an undated one counts only when none is dated. What
    is set aside is listed; statements that still disagree leave the finding unknown. A statement whose level the
    schema cannot hold ("in remission", phase not said) stands too: the finding is then left to enter."""
    by: dict[str, list[_State]] = {}
    for s in c.states:
        by.setdefault(s.finding, []).append(s)
    for finding, said in by.items():
        pool = [s for s in said if s.explicit] or said
        days = [s.day for s in pool if s.day is not None]
        top = [s for s in pool if s.day == (max(days) if days else None)]
        # a newer statement without a status that says otherwise (this year's encounter diagnosis against a
        # problem-list entry never updated) is not outranked: neither is read, both are said (a second review)
        newer = [s for s in said if not s.explicit and s.day is not None and days and s.day > max(days)
                 and s.level not in {t.level for t in top}]
        if pool is not said and newer:
            both = "; ".join(sorted({f"{s.display} ({s.day.isoformat() if s.day else 'undated'})" for s in top + newer}))
            for s in said:
                c.ignore(s.ref, s.code, f"{finding}: statements that disagree: left to enter")
            c.notes.append(f"{finding}: the record's current statement and a newer diagnosis disagree ({both}); "
                           f"left unknown: enter it")
            continue
        kept = [s for s in said if any(s is t for t in top)]
        for s in said:
            if not any(s is t for t in top):
                when = s.day.isoformat() if s.day else "undated"
                newer = ", ".join(sorted({f"{t.display} ({t.day.isoformat() if t.day else 'undated'})" for t in top}))
                c.ignore(s.ref, s.code, f"{finding}: {s.display} ({when}) is superseded by a more recent or current "
                         f"Condition: {newer}")
        levels = {s.level for s in kept}
        if None in levels and len(levels) > 1:
            said_ = "; ".join(sorted({f"{s.display}: {c.level_words(finding, s.level) if s.level else 'which level not said'}"
                                      for s in kept}))
            c.notes.append(f"{finding}: the most recent Conditions say more than one thing ({said_}); left unknown")
            continue
        for s in kept:
            if s.level is None:
                if s.note:
                    c.notes.append(f"{finding}: {s.display}: {s.note}")
            else:
                c.set(finding, s.level, s.display)


def _say(r: Row, c: _Collector) -> None:
    """What one finding row says: its level, else (``level: null``) its note; a lineage row marks a leukaemia."""
    c.leukaemia |= r.finding == LEUKAEMIA_FINDING
    if r.level is None:
        if r.note:
            c.notes.append(f"{r.finding}: {r.display}: {r.note}")
        return
    c.set(r.finding, r.level, r.display)


def _in_window_before(when: When | None, table: Table, window: str, onset: When) -> bool | None:
    """True when every moment ``when`` can mean is within ``window`` before every moment the onset can mean
    (a dose on the day of a dated onset counts, unless both times are given and it came after), False when
    none is (before the window, or after the onset), None otherwise (undated or too imprecise, or an onset
    not known)."""
    if when is None:
        return None
    first, last = onset.lo, onset.hi
    if when.at is not None and onset.at is not None and table.units.get(window) != "months":
        if when.at > onset.at:
            return False
        return when.at >= onset.at - int(table.window(window)) * DAY_SECONDS
    if table.since(window, last) <= when.lo and when.hi <= first:
        return True
    if when.hi < table.since(window, first) or when.lo > last:
        return False
    return None


def _after_onset(when: When | None, onset: When) -> bool:
    """Whether ``when`` is certainly after the onset."""
    if when is None:
        return False
    if when.at is not None and onset.at is not None:
        return when.at > onset.at
    return when.lo > onset.hi


def _exposure(rows: tuple[Row, ...], when: When | None, ref: str, code: str, table: Table,
              c: _Collector, onset: When, undated: str | None = None) -> None:
    """Set what each of ``rows`` says (its finding and level) when ``when`` falls in its window before onset."""
    targets: dict[tuple[str, str, str], str] = {}  # (finding, level, window): the first row's drug or procedure
    for r in rows:
        targets.setdefault((r.finding, r.level, r.window), r.display)
    for (finding, level, window), display in targets.items():
        inside = _in_window_before(when, table, window, onset)
        named = f" ({finding})" if len(targets) > 1 else ""
        if inside:
            c.set(finding, level, f"{display} in the window before onset")
        elif inside is None and when is None:
            c.ignore(ref, code, (undated or "date missing: cannot be placed in the window before onset") + named)
        elif inside is None and onset.lo == dt.date.min:
            c.ignore(ref, code, f"the palsy's onset date is not known: it may have come after it{named}")
        elif inside is None:
            c.ignore(ref, code, f"date too imprecise to place in the window before onset{named}")
        elif _after_onset(when, onset):
            c.ignore(ref, code, f"given after the palsy's onset: not an exposure before it{named}")
        else:
            c.ignore(ref, code, f"outside the window before onset{named}")


def _dose_time(res: Mapping[str, Any], c: _Collector) -> When | None:
    """When a completed MedicationRequest's doses were given, from its dosage timing (timing.event, or
    timing.repeat.boundsPeriod): the span from the first to the last; None when it gives none. Its authoredOn is
    when the order was written (a chemotherapy plan is released ahead of its doses), never a dose's time."""
    spans: list[When] = []
    for dosage in res.get("dosageInstruction") or []:
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        if not isinstance(timing, dict):
            continue
        spans += [w for e in timing.get("event") or [] if (w := parse_when(e, c.zone))]
        bounds = (timing.get("repeat") or {}).get("boundsPeriod") if isinstance(timing.get("repeat"), dict) else None
        if isinstance(bounds, dict):
            start, end = parse_when(bounds.get("start"), c.zone), parse_when(bounds.get("end"), c.zone)
            if start or end:
                spans.append(When(start.lo if start else dt.date.min, end.hi if end else dt.date.max,
                                  start.at if start and end and start.at == end.at else None))
    if not spans:
        return None
    if len(spans) == 1:
        return spans[0]
    return When(min(w.lo for w in spans), max(w.hi for w in spans))


def _medications(entries: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The record's Medication resources by every reference that may name them (fullUrl, ``Medication/<id>``)."""
    out: dict[str, dict[str, Any]] = {}
    for where, res in entries:
        if res.get("resourceType") == "Medication":
            out[_no_history(where)] = res
            if res.get("id"):
                out[f"Medication/{res['id']}"] = res
    return out


def _medication_codings(res: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The codes of what was given or ordered: ``medicationCodeableConcept``, else the Medication its
    ``medicationReference`` names (contained, ``#id``, or an entry of the record: how Epic and Cerner send
    it), its code and its active ingredients' codes; and why none could be read (None when read)."""
    if res.get("medicationCodeableConcept") is not None:
        return _codings(res.get("medicationCodeableConcept")), None
    given = res.get("medicationReference")
    target = given.get("reference") if isinstance(given, dict) else None
    if not isinstance(target, str):
        if isinstance(given, dict) and given.get("display"):
            return [], "its medicationReference names no resource (a display only)"
        return [], "no medication code and no medicationReference"
    if target.startswith("#"):
        med = next((m for m in res.get("contained") or [] if isinstance(m, dict)
                    and m.get("resourceType") == "Medication" and m.get("id") == target[1:]), None)
    else:
        text = _no_history(target)
        m = _REFERENCE.search(text)
        med = medications.get(text) or (medications.get(f"{m.group(1)}/{m.group(2)}") if m else None)
    if med is None:
        return [], f"its medicationReference ({target}) names a Medication not in the record: not read"
    return _codings(med.get("code")) + _ingredient_codings(med), None


def _ingredient_codings(med: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The codes of a Medication's active ingredients (``ingredient[].itemCodeableConcept``; ``isActive`` false
    left out): a product coded by a code the table does not have (an RxNorm SCD, say) names vincristine there, as
    Epic sends it. A drug given that contains vincristine is vincristine given."""
    return [c for i in med.get("ingredient") or [] if isinstance(i, dict) and i.get("isActive") is not False
            for c in _codings(i.get("itemCodeableConcept"))]


def _say_unread_medications(c: _Collector) -> None:
    """One line for each reason a dose by reference was not read, with the number of doses (fourteen doses of one
    Medication not in the record had made fourteen card notes, a second review found)."""
    for why, refs in c.unread_medications.items():
        c.notes.append(f"{len(refs)} medication{'s' if len(refs) > 1 else ''} given or ordered by reference could not "
                       f"be read ({why}; {refs[0]}{', ...' if len(refs) > 1 else ''}): an exposure they may be is not "
                       f"read from the record")


def _medication(res: Mapping[str, Any], ref: str, table: Table, c: _Collector, onset: When,
                medications: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    codings, unread = _medication_codings(res, medications or {})
    rows = tuple(r for cd in codings for r in table.lookup(cd, "medication"))
    if not rows:
        c.ignore(ref, _code_text(codings[0]) if codings else "medicationReference",
                 unread or "medication not in the mapping table")
        if unread and res.get("medicationReference") is not None:
            c.unread_medications.setdefault(unread, []).append(ref)  # said once per reason: _say_unread_medications
        return
    code = _code_text(next(cd for cd in codings if table.lookup(cd, "medication")))  # the code read, an ingredient's
    why = _not_a_dose(res)
    if why:
        c.ignore(ref, code, why)
        return
    if res["resourceType"] == "MedicationAdministration":
        when = c.when(res, "effectiveDateTime", "effectivePeriod")
        undated = "no time given (effective[x] absent): cannot be placed in the window before onset"
    else:
        when = _dose_time(res, c)
        undated = ("no dose time (dosageInstruction timing); its authoredOn is when it was ordered, not when a dose "
                   "was given: cannot be placed in the window before onset")
    _exposure(rows, when, ref, code, table, c, onset, undated)


def _not_a_dose(res: Mapping[str, Any]) -> str | None:
    """Why a MedicationAdministration or MedicationRequest does not say a dose was given (None when it does)."""
    status = res.get("status")
    if res["resourceType"] == "MedicationAdministration":
        if status not in ("completed", "in-progress"):
            return f"administration status {status}: not a dose given"
        return None
    if res.get("doNotPerform") is True:
        return "order says do not perform: not a dose"
    if res.get("intent") not in _ORDER_INTENTS:
        return f"request intent {res.get('intent')}: a proposal or plan, not an order (not a dose)"
    if status != "completed":
        return f"order status {status}: an order is not a dose (only completed orders are read)"
    return None


def _procedure(res: Mapping[str, Any], ref: str, table: Table, c: _Collector, onset: When) -> None:
    codings = _codings(res.get("code"))
    rows = tuple(r for cd in codings for r in table.lookup(cd, "procedure"))
    if not rows:
        c.ignore(ref, _code_text(codings[0]) if codings else "-", "procedure not in the mapping table")
        return
    code = _code_text(codings[0])
    if res.get("status") != "completed":
        c.ignore(ref, code, f"procedure status {res.get('status')}: not done")
        return
    _exposure(rows, c.when(res, "performedDateTime", "performedPeriod"), ref, code, table, c, onset)


def _report(res: Mapping[str, Any], ref: str, table: Table, c: _Collector, onset: When | None) -> None:
    codings = [cd for cc in res.get("conclusionCode") or [] for cd in _codings(cc)]
    rows = [(cd, r) for cd in codings for r in table.lookup(cd, "imaging")]
    if not rows:
        c.ignore(ref, _code_text(codings[0]) if codings else "-", "no conclusion code in the mapping table")
        return
    code = _code_text(rows[0][0])
    if res.get("status") not in _ATTRIBUTE_STATUS_OK | {"appended"}:
        c.ignore(ref, code, f"report status {res.get('status')}: not final")
        return
    when = c.when(res, "effectiveDateTime", "effectivePeriod")
    if when is None and (issued := c.when(res, "issued")) is not None:
        # issued is when the report was released: the study was done on or before it, not on that day
        why = _not_after_onset(issued, onset)
        if why is None:
            why = ("only the report's issued time (not when the study was done, which it gives no time for): "
                   "cannot be placed after the palsy's onset")
        c.ignore(ref, code, why)
        return
    why = _not_after_onset(when, onset)
    if why:
        c.ignore(ref, code, why)
        return
    for _, r in rows:
        c.set("mri", r.level, f"{r.modality}: {r.display}")
        c.read.append((ref, f"{r.modality} {r.display}"))


def _not_after_onset(when: When | None, onset: When | None) -> str | None:
    """Why a test dated ``when`` cannot be counted as done on or after the palsy's onset (None when it can):
    instants are compared where both times are given, else days (a test on the day of onset counts)."""
    if onset is None:
        return "no palsy onset date to place it"
    if when is None:
        return "undated: cannot be placed after the palsy's onset"
    if when.at is not None and onset.at is not None:
        return "before the palsy's onset" if when.at < onset.at else None
    if when.hi < onset.lo:
        return "before the palsy's onset"
    if when.lo < onset.hi:
        if onset.lo == dt.date.min:
            return f"cannot be placed: the palsy's onset is known only to be on or before {onset.hi.isoformat()}"
        return "cannot be placed: it may be before the palsy's onset (a date known only to a month or year)"
    return None


def _results(concepts: list[Any], table: Table, schema: SC.Schema, local: bool) -> set[str]:
    """The results (positive, negative) the table's codes in ``concepts`` say; palsy's own level codes too when
    ``local``."""
    got = set()
    for concept in concepts:
        for cd in _codings(concept):
            got.update(r.result for r in table.lookup(cd, "result"))
            if local and cd.get("system") == table.local["level_system"] and cd.get("code") in schema.lp.results:
                got.add(str(cd["code"]))
    return got


#: A result that is read (positive, negative); the table's ``normal`` and ``abnormal`` (interpretation flags) are
#: read only against a value: a flag of abnormal beside a coded negative, or normal beside a positive, disagrees.
READ_RESULTS = ("positive", "negative")
_AGAINST = {"positive": {"negative", "normal"}, "negative": {"positive", "abnormal"}}


def _reading(res: Mapping[str, Any], table: Table, schema: SC.Schema,
             measure: str | None = None) -> tuple[str | None, str | None]:
    """An Observation's coded result and, when it has none, why (None when it gives nothing to read).

    The value is the result, and its interpretation is read with it; the interpretation alone only when the
    Observation has no value at all. A value palsy does not read (free text, a concept without a code of the
    table, a number, a boolean) is never replaced by its interpretation: a cytology reading "POSITIVE for
    malignant cells", or a flow of 0.8% leukaemic events, flagged NEG would be read negative. Codes that
    disagree (within the value, within the interpretation, or between them, an abnormal flag beside a coded
    negative included) leave it unread. One number is read, by the table's rule (``zero_read_negative``) for the
    ``measure`` it names: exactly 0 beside an interpretation the table reads negative (:func:`_zero_reading`)."""
    value = _results([res.get("valueCodeableConcept")], table, schema, local=True)
    flags = _results(list(res.get("interpretation") or []), table, schema, local=False)
    said = value | flags
    if any(said & _AGAINST[r] for r in READ_RESULTS if r in said):
        if value and flags:
            return None, f"its value says {' and '.join(sorted(value))}, its interpretation {' and '.join(sorted(flags))}"
        return None, f"its {'value' if value else 'interpretation'}'s codes say {' and '.join(sorted(said))}"
    read = value & set(READ_RESULTS)
    if read:
        return next(iter(read)), None
    kinds = sorted(k[len("value"):] for k in res if k.startswith("value") and k[len("value"):][:1].isupper())
    if kinds:
        if measure in table.zero_negative and (zero := _zero_reading(res, flags, table)) is not None:
            return zero
        kind = {"String": "text", "CodeableConcept": "text or a code palsy does not read", "Quantity": "a number",
                "Integer": "a number", "Boolean": "true or false"}.get(kinds[0], f"a {kinds[0]}")
        return None, (f"its value is {kind}, not a coded positive or negative" +
                      (", and its interpretation alone is not read against it" if flags else ""))
    read = flags & set(READ_RESULTS)
    if read:
        return next(iter(read)), None
    if flags:
        return None, f"its interpretation alone ({' and '.join(sorted(flags))}) is not a positive or negative result"
    return None, None


def _zero_reading(res: Mapping[str, Any], flags: set[str], table: Table) -> tuple[str | None, str | None] | None:
    """The table's rule for a number (``zero_read_negative``): a value of exactly 0 (a valueQuantity without a
    comparator, or a valueInteger) whose interpretation the table reads negative, each interpretation carrying a code
    the table reads and none saying otherwise (a normal flag may stand beside it), is negative: the value and its
    coding say the same (the common MRD-style "0.00 %" flagged NEG). A 0 flagged otherwise (POS, H, a code the table does not
    read) or not flagged is not read, and why is said; None for any other number (0.01 %, 0.8 %: not judged here)."""
    if "valueQuantity" in res:
        q = res["valueQuantity"] if isinstance(res["valueQuantity"], dict) else {}
        number = None if q.get("comparator") else _num(q.get("value"))
    else:
        number = _num(res.get("valueInteger"))
    if number != 0:
        return None
    concepts = [cc for cc in res.get("interpretation") or [] if isinstance(cc, dict)]
    # a flag the table does not read (H, a local code, text alone) may say otherwise: the 0 is then not read
    unread = [", ".join(_code_text(cd) for cd in _codings(cc)) or "text only" for cc in concepts
              if not any(table.lookup(cd, "result") for cd in _codings(cc))]
    if flags & set(READ_RESULTS) == {"negative"} and not unread:
        return "negative", None
    if not concepts:
        flagged = "no interpretation"
    else:
        flagged = "an interpretation that says " + " and ".join(
            [*sorted(flags), *(f"{u} (a code palsy does not read)" for u in unread)])
    return None, (f"its value is 0 with {flagged}: the table reads a 0 as negative only beside an interpretation that "
                  f"says negative (zero_read_negative)")


#: Words that only restate a coded result (case and punctuation aside): text beside a code that says more is shown.
_RESTATES = {"positive", "negative", "pos", "neg", "detected", "not detected", "none detected", "present", "absent"}


def _text_beside(concept: Any, result: str) -> str | None:
    """The text of a coded concept (the words the code was chosen for) when it says more than its code: not the
    code's display, nor a word that restates the result; its first 120 characters, one line."""
    text = concept.get("text") if isinstance(concept, dict) else None
    if not isinstance(text, str):
        return None
    plain = " ".join(text.split())
    bare = re.sub(r"[^a-z ]", "", plain.lower()).strip()
    shown = {str(cd.get("display") or "").strip().lower() for cd in _codings(concept)}
    if not plain or bare in _RESTATES or bare == result or plain.lower() in shown:
        return None
    return plain[:120] + ("..." if len(plain) > 120 else "")


def _texts_beside(res: Mapping[str, Any], result: str, table: Table, schema: SC.Schema) -> list[tuple[bool, str]]:
    """The words beside the code a result was read from (:func:`_text_beside`), each with whether they are an
    interpretation's: the value's text (``valueCodeableConcept.text``), or, when the result was read from the
    interpretation (no value, or a 0 by the table's rule), the text of each interpretation that says it ("Negative;
    see comment: small CD19+ population" beside a 0 read negative had gone unseen, a review found). A ``note`` is a
    laboratory's comment, often on the specimen: not shown, or every card would carry it."""
    if _results([res.get("valueCodeableConcept")], table, schema, local=True) & set(READ_RESULTS):
        text = _text_beside(res.get("valueCodeableConcept"), result)
        return [(False, text)] if text is not None else []
    return [(True, text) for cc in res.get("interpretation") or [] if result in _results([cc], table, schema, local=False)
            and (text := _text_beside(cc, result)) is not None]


def _result_of(res: Mapping[str, Any], table: Table, schema: SC.Schema) -> str | None:
    """An Observation's coded result (positive, negative), or None: :func:`_reading`."""
    return _reading(res, table, schema)[0]


def _per_uL(q: Mapping[str, Any]) -> float | None:
    unit = q.get("code") or q.get("unit")
    factor = _UNITS_PER_UL.get(str(unit)) if unit else None
    value = _num(q.get("value"))
    if factor is None or q.get("comparator") or value is None:
        return None
    return value * factor


#: A lab result as read for the LPs: (when it was collected, measure, resource, reference, dated by issued only).
_Lab = tuple[When, str, dict[str, Any], str, bool]


#: What an Observation's component carries of its own (the rest, its time, status and subject, are the parent's).
_COMPONENT_OWN = ("code", "interpretation", "referenceRange", "dataAbsentReason")


def _observations(res: Mapping[str, Any], ref: str, table: Table, c: _Collector) -> list[_Lab]:
    """One Observation read (:func:`_observation`), and each of its components whose code is a lab row read as an
    Observation of its own with the parent's time and status: a CSF cell count sent as one panel with its white and
    red cells as components had lost the traumatic tap silently (a review, December 2026). A panel whose own code
    palsy does not read is not listed when a component of it is read."""
    parts = [(i, cmp) for i, cmp in enumerate(res.get("component") or [], start=1) if isinstance(cmp, dict)
             and any(table.lookup(cd, "lab") for cd in _codings(cmp.get("code")))]
    own = any(table.lookup(cd) or cd.get("system") == table.local["finding_system"] for cd in _codings(res.get("code")))
    labs = []
    if own or not parts:
        lab = _observation(res, ref, table, c)
        labs += [lab] if lab else []
    base = {k: v for k, v in res.items() if k not in ("component", *_COMPONENT_OWN) and not k.startswith("value")}
    for i, cmp in parts:
        part = {**base, **{k: v for k, v in cmp.items() if k in _COMPONENT_OWN or k.startswith("value")}}
        lab = _observation(part, f"{ref} component {i}", table, c)
        labs += [lab] if lab else []
    return labs


def _observation(res: Mapping[str, Any], ref: str, table: Table, c: _Collector) -> _Lab | None:
    """Read one Observation: palsy's own finding, a CSF or blood measure (returned for the LPs), or a finding
    row's code (read only when its value says present, or it has none). Only a final (amended, corrected) one."""
    codings = _codings(res.get("code"))
    for cd in codings:
        local = cd.get("system") == table.local["finding_system"]
        rows = table.lookup(cd, "lab") or table.lookup(cd, "finding")
        if not (local or rows):
            continue
        if res.get("status") not in _ATTRIBUTE_STATUS_OK:
            why = f"observation status {res.get('status')}: not final"
            if rows and rows[0].role == "lab" and rows[0].measure in CSF_RESULTS and res.get("status") != "entered-in-error":
                _csf_not_used(c, table, ref, rows[0].measure, res, why)
            else:
                c.ignore(ref, _code_text(cd), why)
            return None
        if local:
            _own_finding(res, ref, cd, table, c)
        elif rows[0].role == "lab":
            return _lab(res, ref, cd, rows[0].measure, table, c)
        elif res.get("dataAbsentReason") is not None:
            c.ignore(ref, _code_text(cd), "its value is absent (dataAbsentReason): not read as the code's finding")
        elif res.get("valueBoolean") is True or _reading(res, table, c.schema) == ("positive", None) or (
                not any(k.startswith("value") for k in res) and _reading(res, table, c.schema) == (None, None)):
            for r in rows:
                _say(r, c)
        else:
            c.ignore(ref, _code_text(cd), "its value does not say present (negative, not detected, or a value palsy "
                                          "cannot read): not read as the code's finding")
        return None
    c.ignore(ref, _code_text(codings[0]) if codings else "-", "code not in the mapping table")
    return None


def _lab(res: Mapping[str, Any], ref: str, cd: Mapping[str, Any], measure: str, table: Table,
         c: _Collector) -> _Lab | None:
    """A lab result dated by its collection (effective[x]); a CSF result with only ``issued`` (the report's
    time, days later) is kept to be matched to its LP (:func:`_lumbar_punctures`); a blood count, not."""
    when = c.when(res, "effectiveDateTime", "effectivePeriod", "effectiveInstant")
    if when is not None and when.lo == when.hi:
        return when, measure, dict(res), ref, False
    if when is None and (issued := c.when(res, "issued")) is not None and measure in CSF_MEASURES:
        return issued, measure, dict(res), ref, True
    why = ("no collection time (effective[x]) on a day: cannot be placed" +
           ("; issued is when it was reported, not when it was taken" if res.get("issued") else ""))
    if measure in CSF_RESULTS:
        _csf_not_used(c, table, ref, measure, res, why)
    else:
        c.ignore(ref, _code_text(cd), why)
    return None


#: The CSF measures that are an LP's result (the schema's methods), and their names in words.
CSF_RESULTS = {"csf_cytology": "cytology", "csf_flow": "flow cytometry"}


def _csf_not_used(c: _Collector, table: Table, ref: str, measure: str, res: Mapping[str, Any], why: str,
                  when: When | None = None, *, before_onset: bool = False, reported: bool = False,
                  advice: bool = True) -> None:
    """A CSF cytology or flow result left out: listed, and said in the notes the card shows with its result
    (a review, December 2026, found positive cytologies left out silently: timed by effectiveInstant, dated only
    by a report's issue, preliminary, or beyond the LPs the schema reads). A positive or unreadable one is said on
    its own (with what to do, ``advice``, unless its report was withdrawn); negative ones are gathered into one line
    (:func:`_say_unused_negatives`), and those from before the palsy's onset only listed (a record of maintenance
    therapy holds years of routine LPs)."""
    c.ignore(ref, measure, why)
    result, _ = _reading(res, table, c.schema, measure)
    if before_onset and result != "positive":
        return
    if result == "negative":  # said in one line with the others (a record holds years of routine LPs)
        day = (when or c.when(res, "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"))
        c.unused_negative.append((day.lo if day is not None and day.lo > dt.date.min else None, why))
        return
    when = when or c.when(res, "effectiveDateTime", "effectivePeriod", "effectiveInstant")
    day = f" of {when.lo.isoformat()}" if when is not None and when.lo == when.hi and not reported else ""
    said = {"positive": "a positive", "negative": "a negative"}.get(result or "", "a")
    c.notes.append(f"{said} CSF {CSF_RESULTS[measure]}{day} in the record was not used ({why})" +
                   (": read it, and enter it if it is this palsy's" if result == "positive" and advice else ""))


def _own_finding(res: Mapping[str, Any], ref: str, cd: Mapping[str, Any], table: Table, c: _Collector) -> None:
    """palsy's own Observation: any finding of the schema, its level as the value. An exam finding (and any
    state but the lineage) is read only when this episode's: made on or after the onset and within
    ``own_finding_days_after_onset`` of it (within that many days before today when the onset is not dated)."""
    finding = str(cd.get("code"))
    levels = [v.get("code") for v in _codings(res.get("valueCodeableConcept"))
              if v.get("system") == table.local["level_system"]]
    if not levels:
        c.ignore(ref, _code_text(cd), f"no {table.local['level_system']} value")
        return
    if finding == c.schema.lp.name:
        c.ignore(ref, _code_text(cd), "LPs are read from their CSF results, not as one finding")
        return
    if finding != LEUKAEMIA_FINDING:
        why = _not_this_episode(c.when(res, "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"),
                                table, c)
        if why:
            c.ignore(ref, _code_text(cd), f"{finding}: {why}")
            c.notes.append(f"{finding}: palsy's own observation ({ref}) {why}: not used")
            return
    c.set(finding, str(levels[0]), "entered as palsy's own observation")


def _not_this_episode(when: When | None, table: Table, c: _Collector) -> str | None:
    days = int(table.window("own_finding_days_after_onset"))
    onset = c.onset
    if when is None:
        return "undated: cannot be placed in this episode"
    if onset is None or onset.lo == dt.date.min:
        first, last = shift(c.today, -days), c.today
        if onset is not None:
            last = min(last, shift(onset.hi, days))
        if when.hi < first or when.lo > last:
            return (f"dated {when.lo.isoformat()}: the palsy's onset is not known, and it is not within "
                    f"{days} days before today")
        return None
    if _not_after_onset(when, onset):
        return f"dated {when.lo.isoformat()}, before this palsy's onset ({onset.lo.isoformat()}): not this episode"
    if when.lo > shift(onset.hi, days):
        return f"dated {when.lo.isoformat()}, more than {days} days after this palsy's onset ({onset.lo.isoformat()})"
    return None


@dataclasses.dataclass(frozen=True, order=True)
class _Tap:
    """One LP: its day in the record's zone and, where two taps of one day are told apart by their times, its
    order and time of day ('09:00')."""

    day: dt.date
    order: int = 0
    time: str = ""

    def isoformat(self) -> str:
        return self.day.isoformat() + (f" {self.time}" if self.time else "")


def _taps_of_day(day: dt.date, timed: list[tuple[int | None, str, dict[str, Any], str]], table: Table,
                 c: _Collector) -> dict[_Tap, dict[str, list[tuple[dict[str, Any], str]]]]:
    """A day's CSF results as one LP, or as several where their collection times tell apart taps that each have a
    cytology or flow result and cell counts of their own (more than ``same_lp_hours`` between them: a traumatic tap
    repeated hours later had been merged with it, its results 'both positive and negative' and its counts the
    profile). A result of such a day without a time, or in a cluster that is not a whole tap, cannot be placed: it
    is left out and said."""
    gap = table.windows.get("same_lp_hours")
    clusters: list[list[tuple[int, str, dict[str, Any], str]]] = []
    for at, measure, res, ref in sorted((t for t in timed if t[0] is not None), key=lambda t: t[0]):
        if clusters and at - clusters[-1][-1][0] <= float(gap or 0) * 3600:
            clusters[-1].append((at, measure, res, ref))
        else:
            clusters.append([(at, measure, res, ref)])
    # a second tap repeats the counts: a cluster of results alone is one tap's send-out stamped at its receipt (a
    # second review found a flow stamped 4.5 h later read as a second LP, its traumatic flag left behind)
    resulted = [k for k in clusters if any(m in CSF_RESULTS for _, m, _, _ in k)
                and any(m in ("csf_wbc", "csf_rbc") for _, m, _, _ in k)]
    if gap is None or len(resulted) < 2:
        one: dict[str, list[tuple[dict[str, Any], str]]] = {}
        for _, measure, res, ref in timed:
            one.setdefault(measure, []).append((res, ref))
        return {_Tap(day): one}
    out: dict[_Tap, dict[str, list[tuple[dict[str, Any], str]]]] = {}
    for k, cluster in enumerate(resulted):
        local = (cluster[0][0] + c.offset(cluster[0][0]) * 60) % DAY_SECONDS
        tap = _Tap(day, k, f"{local // 3600:02d}:{local % 3600 // 60:02d}")
        for _, measure, res, ref in cluster:
            out.setdefault(tap, {}).setdefault(measure, []).append((res, ref))
    times = ", ".join(t.time for t in out)
    why = f"{len(out)} LPs on {day.isoformat()} ({times}) and this result cannot be placed in one of them"
    placed = {id(res) for cluster in resulted for _, _, res, _ in cluster}
    for _, measure, res, ref in timed:
        if id(res) not in placed:
            if measure in CSF_RESULTS:
                _csf_not_used(c, table, ref, measure, res, why)
            else:
                c.ignore(ref, measure, why)
    c.notes.append(f"two or more LPs on {day.isoformat()}, told apart by their times ({times}): read as LPs of their own")
    return out


def _on_tap_days(taken: list[tuple[When, str, dict[str, Any], str]], table: Table,
                 c: _Collector) -> list[tuple[When, str, dict[str, Any], str]]:
    """The CSF results with the day of the tap each is of: results whose stamps give times are grouped by instant
    first (one tap: within ``same_lp_hours`` of the next, across midnight), and each group is on one day, the one most
    of its stamps name (a tie: the day in the record's zone at its first instant); a result dated without a time
    keeps its day. One tap stamped in two offsets (an EHR's 00:15-04:00 and a laboratory system's 23:15-05:00, a
    send-out laboratory in another zone) names two days: read by their days, it had been split into two LPs, its
    traumatic flag and profile lost, a review found (s17, after stamps were put on the days written in them)."""
    gap = float(table.windows.get("same_lp_hours") or 0) * 3600
    timed = sorted((i for i, t in enumerate(taken) if t[0].at is not None), key=lambda i: taken[i][0].at)
    groups: list[list[int]] = []
    for i in timed:
        if groups and taken[i][0].at - taken[groups[-1][-1]][0].at <= gap:
            groups[-1].append(i)
        else:
            groups.append([i])
    out = list(taken)
    for group in groups:
        days = [taken[i][0].lo for i in group]
        count = {d: days.count(d) for d in days}
        most = [d for d in count if count[d] == max(count.values())]
        at = taken[group[0]][0].at
        day = most[0] if len(most) == 1 else shift(dt.date.min, (at + c.offset(at) * 60) // DAY_SECONDS - 1)
        for i in group:
            when, measure, res, ref = taken[i]
            out[i] = (When(day, day, when.at), measure, res, ref)
    return out


def _lumbar_punctures(labs: list[_Lab], table: Table, c: _Collector,
                      onset: When | None, first_known: bool = True) -> list[dict[str, str]]:
    """LPs from CSF results grouped by the day of their tap (:func:`_on_tap_days`; on or after onset), a day's taps
    told apart by their times (:func:`_taps_of_day`), in order; sets csf_profile and circulating_blasts from the first
    LP (not when ``first_known`` is false: an Observation search was read only in part); returns the csf list in the
    form the schema in use reads. A CSF result dated only by when it was issued joins the one LP collected between
    the onset and then, else is not placed."""
    by_day: dict[dt.date, list[tuple[int | None, str, dict[str, Any], str]]] = {}
    blasts, late, taken = [], [], []
    for when, measure, res, ref, issued_only in labs:
        if measure == "blood_blasts":
            blasts.append((when, res, ref))
        elif issued_only:
            late.append((when, measure, res, ref))
        else:
            taken.append((when, measure, res, ref))
    for when, measure, res, ref in _on_tap_days(taken, table, c):
        why = _not_after_onset(when, onset)
        if why:
            if measure in CSF_RESULTS:
                _csf_not_used(c, table, ref, measure, res, why, when, before_onset=why == "before the palsy's onset")
            else:
                c.ignore(ref, measure, why)
            continue
        by_day.setdefault(when.lo, []).append((when.at, measure, res, ref))
    groups: dict[_Tap, dict[str, list[tuple[dict[str, Any], str]]]] = {}
    for day, timed in by_day.items():
        groups.update(_taps_of_day(day, timed, table, c))
    for issued, measure, res, ref in late:
        if onset is not None and _not_after_onset(issued, onset) == "before the palsy's onset":
            if measure in CSF_RESULTS:
                _csf_not_used(c, table, ref, measure, res, "reported (issued) before the palsy's onset", issued,
                              before_onset=True, reported=True)
            else:
                c.ignore(ref, measure, "reported (issued) before the palsy's onset")
            continue
        could = [tap for tap in groups if tap.day <= issued.hi]
        if len(could) == 1:
            groups[could[0]].setdefault(measure, []).append((res, ref))
            c.notes.append(f"the {MEASURE_WORDS[measure]} ({ref}) has no collection time, only when it was reported "
                           f"({issued.lo.isoformat()}): read with the one LP before that ({could[0].isoformat()})")
        else:
            why = ("no collection time (effective[x]), only when it was reported (issued): "
                   + ("more than one LP it could belong to" if could else "no LP it could belong to"))
            if measure in CSF_RESULTS:
                _csf_not_used(c, table, ref, measure, res, why, issued, reported=True)
            else:
                c.ignore(ref, measure, why)
    days = sorted(groups)
    lps = []
    for day in days:
        lp = _lp(groups[day], day, table, c)
        if "cytology" in lp or "flow" in lp:
            lps.append((day, lp))
        elif not (groups[day].get("csf_cytology") or groups[day].get("csf_flow")):  # (results not read: _lp notes why)
            # a cell count alone is not an LP result the schema can read (cytology and flow to come)
            c.notes.append(f"LP on {day.isoformat()}: no final cytology or flow result in the record (pending, not "
                           f"final, or not sent): left out")
    lps = _within_cap(lps, int(c.schema.lp.max_lps), c)
    if days and not first_known:
        c.notes.append("csf_profile, circulating_blasts: the first LP cannot be told while the Observation search is read "
                       "only in part; left unknown")
    elif days:
        if lps and lps[0][0] != days[0]:
            c.notes.append(f"csf_profile: the first LP ({days[0].isoformat()}) has no cytology or flow result yet; "
                           f"its profile is not read with a later LP as the first; left unknown")
        else:
            _profile(groups[days[0]], days[0].day, table, c)
        _blasts(blasts, days[0].day, table, c)
    _say_unused_negatives(c)
    return _csf_form([lp for _, lp in lps], c)


def _say_unused_negatives(c: _Collector) -> None:
    """One line for every negative CSF result left out (their number, first and last day, and why), where one line
    each had buried the one positive among fifty (a second review)."""
    if not c.unused_negative:
        return
    days = sorted(d for d, _ in c.unused_negative if d is not None)
    span = (f" from {days[0].isoformat()} to {days[-1].isoformat()}" if len(days) > 1 and days[0] != days[-1] else
            f" of {days[0].isoformat()}" if days else "")
    whys = sorted({why for _, why in c.unused_negative})
    n = len(c.unused_negative)
    c.notes.append(f"{n} negative CSF cytology or flow result{'s' if n > 1 else ''}{span} in the record "
                   f"{'were' if n > 1 else 'was'} not used ({'; '.join(whys[:3])}{'; ...' if len(whys) > 3 else ''})")
    c.unused_negative.clear()


def _within_cap(lps: list[tuple[_Tap, dict[str, str]]], most: int, c: _Collector) -> list[tuple[_Tap, dict[str, str]]]:
    """The LPs the schema reads, at most ``most``: the first (it carries the profile), every LP with a positive
    result (a positive CSF is never the one left out: a review found a seventh LP, positive, dropped after six
    negatives), then the earliest others; in their order. Each LP left out is said with its results."""
    if len(lps) <= most:
        return lps
    positive = [i for i, (_, lp) in enumerate(lps) if "positive" in (lp.get("cytology"), lp.get("flow"))]
    # the first LP always (its counts are the profile's), then every positive one, then the earliest others
    keep = {0} | set([i for i in positive if i != 0][:most - 1])
    keep |= set([i for i in range(len(lps)) if i not in keep][:most - len(keep)])
    for i, (day, lp) in enumerate(lps):
        if i not in keep:
            results = ", ".join(f"{m} {lp[m]}" for m in ("cytology", "flow") if m in lp)
            c.notes.append(f"an LP on {day.isoformat()} ({results}) is beyond the {most} the schema reads: not used" +
                           (" (the LPs used: the first, every positive one, then the earliest)" if positive else ""))
    return [lps[i] for i in sorted(keep)]


def _lp(g: Mapping[str, list[tuple[dict[str, Any], str]]], day: _Tap, table: Table, c: _Collector) -> dict[str, str]:
    """One LP's results: cytology and flow where one result was read, traumatic from its red cells."""
    lp: dict[str, str] = {}
    unread: dict[str, list[str]] = {}
    for method, measure in (("cytology", "csf_cytology"), ("flow", "csf_flow")):
        readings = [(res, ref, *_reading(res, table, c.schema, measure)) for res, ref in g.get(measure, [])]
        got = {result for _, _, result, _ in readings if result is not None}
        if len(got) == 1:
            lp[method] = got.pop()
        elif len(got) > 1:
            c.notes.append(f"LP on {day.isoformat()}: {method} reported both positive and negative; left unknown")
        for res, ref, result, why in readings:
            if result is None:
                why = why or "result not coded as positive or negative"
                c.ignore(ref, measure, why)
                unread.setdefault(method, []).append(why)
                continue
            c.read.append((ref, f"CSF {method} {result}, LP on {day.isoformat()}"))
            for interpretation, text in _texts_beside(res, result, table, c.schema):
                # the code is read; words beside it that say something else are shown, never parsed ("Suspicious
                # for malignancy: atypical blasts" beside a coded negative had gone unseen)
                c.notes.append(f"LP on {day.isoformat()}: its {method} is coded {result}" +
                               (" (by its interpretation)" if interpretation else "") +
                               f", and the report's text beside the code reads \"{text}\": read the report")
    # said on the card, not only in the JSON's ignored list: a cytology written "POSITIVE" beside a coded negative
    # flow would otherwise leave an LP read negative with nothing to show that one of its results was not read
    for method, whys in unread.items():
        read = [m for m in ("cytology", "flow") if m in lp]
        c.notes.append(f"LP on {day.isoformat()}: its {method} result cannot be read as positive or negative "
                       f"({'; '.join(sorted(set(whys)))}); " +
                       (f"the LP is read from its {' and '.join(read)} alone" if read else "the LP is left out") +
                       f": read the report and enter its {method}")
    counted = [_per_uL(res.get("valueQuantity") or {}) for res, _ in g.get("csf_blasts", [])]
    if any(x is None or x > 0 for x in counted):
        # blasts counted on the cytospin of the cell count: the schema reads an LP's cytology or flow verdict, and a
        # count is not one (a review found such a count beside 'no cytology or flow result ... pending')
        shown = ", ".join(f"{x:g}/uL" if x is not None else "a count palsy cannot read" for x in counted)
        c.notes.append(f"LP on {day.isoformat()}: blasts counted in the CSF ({shown}): not read as a cytology or flow "
                       f"result; read the report and enter the cytology")
    rbc = [_per_uL(res.get("valueQuantity") or {}) for res, _ in g.get("csf_rbc", [])]
    if g.get("csf_rbc") and None in rbc:  # said, as the white cells' are: a traumatic tap is what weighs blasts
        c.notes.append(f"LP on {day.isoformat()}: a red-cell count has a unit palsy cannot read (or a comparator): "
                       f"{'read from the others' if any(x is not None for x in rbc) else 'traumatic left unknown'}")
    rbc = [x for x in rbc if x is not None]
    if rbc:
        lp["traumatic"] = "yes" if max(rbc) >= table.window("traumatic_red_cells_at_least_per_uL") else "no"
    return lp


def _profile(g: Mapping[str, list[tuple[dict[str, Any], str]]], day: dt.date, table: Table, c: _Collector) -> None:
    wbc = [_per_uL(res.get("valueQuantity") or {}) for res, _ in g.get("csf_wbc", [])]
    wbc = [x for x in wbc if x is not None]
    if not wbc:
        if g.get("csf_wbc"):
            c.notes.append("csf_profile: the first LP's white-cell count has a unit palsy cannot read (or a comparator)")
        return
    if max(wbc) > table.window("pleocytosis_above_per_uL"):
        c.set("csf_profile", "pleocytosis", "first LP: white cells above the limit")
        return
    if not g.get("csf_protein"):
        c.notes.append("csf_profile: the first LP's white cells are not raised and it has no protein result; left unknown")
        return
    said = {r for r in (_protein_raised(res, ref, day, c) for res, ref in g.get("csf_protein", [])) if r is not None}
    if len(said) != 1:
        c.notes.append(("csf_profile: the first LP's protein has no interpretation and no reference range that "
                        "applies to this patient (a value in its unit)" if not said else
                        "csf_profile: the first LP's protein results disagree (raised and not raised)") + "; left unknown")
        return
    c.set("csf_profile", "protein_only" if said.pop() else "normal", "first LP: white cells and protein")


def _range_applies(rr: Mapping[str, Any], day: dt.date, c: _Collector) -> bool | None:
    """Whether a reference range applies to this patient on ``day``: True with no ``age`` and no ``appliesTo``;
    by its ``age`` (a Range, the patient's age from the birth date); None when it cannot be told (an
    ``appliesTo`` population, an age unit palsy cannot read, or no birth date)."""
    if rr.get("appliesTo"):
        return None
    age = rr.get("age")
    if not isinstance(age, dict):
        return True
    if c.born is None:
        return None
    bounds = []
    for side in ("low", "high"):
        q = age.get(side)
        if q is None:
            bounds.append(None)
            continue
        per = AGE_UNIT_YEARS.get(str(q.get("code") or q.get("unit") or "")) if isinstance(q, dict) else None
        if per is None or _num(q.get("value")) is None:
            return None
        bounds.append(_num(q["value"]) * per)
    ages = {(day.toordinal() - b.toordinal()) / 365.25 for b in (c.born.lo, c.born.hi)}
    inside = {(bounds[0] is None or a >= bounds[0]) and (bounds[1] is None or a <= bounds[1]) for a in ages}
    return inside.pop() if len(inside) == 1 else None


def _protein_raised(res: Mapping[str, Any], ref: str, day: dt.date, c: _Collector) -> bool | None:
    """Whether a CSF protein is above its laboratory's upper limit: the laboratory's own interpretation (H, HH,
    HU raised; N, L, LL, LU not) where given; else its value against the ``high`` of every reference range that
    applies to the patient (by ``age``; one whose population cannot be told counts as may apply), which must
    agree; None when neither says. A range that disagrees with the interpretation is noted, not used."""
    q = res.get("valueQuantity") or {}
    value_unit = q.get("code") or q.get("unit")
    verdicts, unsure = set(), False
    for rr in res.get("referenceRange") or []:
        if not isinstance(rr, dict):
            continue
        applies = _range_applies(rr, day, c)
        if applies is False:
            continue
        high = rr.get("high")
        if not (isinstance(high, dict) and _num(high.get("value")) is not None and not high.get("comparator")
                and _num(q.get("value")) is not None and not q.get("comparator")
                and (high.get("code") or high.get("unit")) == value_unit):
            unsure = True  # a range palsy cannot compare with (no high, another unit): it cannot tell
            continue
        verdicts.add(_num(q["value"]) > _num(high["value"]))
        unsure |= applies is None
    interp = {cd.get("code") for cc in res.get("interpretation") or [] for cd in _codings(cc)}
    flag = True if interp & {"H", "HH", "HU"} else False if interp & {"N", "L", "LL", "LU"} else None
    by_range = next(iter(verdicts)) if len(verdicts) == 1 and not unsure else None
    if flag is not None:
        if by_range is not None and by_range != flag:
            c.notes.append(f"csf_profile: the protein ({ref}) is flagged {'/'.join(sorted(interp))} by its laboratory "
                           f"but its reference range says otherwise: the laboratory's flag is used")
        return flag
    return by_range


def _blasts(blasts: list[tuple[When, dict[str, Any], str]], lp_day: dt.date, table: Table, c: _Collector) -> None:
    """Blood blasts at the first LP: every count on the day nearest the LP (within the table's limit) is read;
    counts that disagree leave circulating_blasts unknown (no count is preferred by its order in the record)."""
    limit = int(table.window("blasts_days_from_lp"))
    near = [(abs(w.lo.toordinal() - lp_day.toordinal()), res) for w, res, _ in blasts]
    near = [(d, res) for d, res in near if d <= limit]
    if not near:
        return
    best = min(d for d, _ in near)
    for d, res in near:
        if d != best:
            continue
        q = res.get("valueQuantity") or {}
        result = _result_of(res, table, c.schema)
        if isinstance(q.get("value"), int | float) and not q.get("comparator"):
            c.set("circulating_blasts", "present" if q["value"] > 0 else "absent", "blood blasts at the first LP")
        elif result:
            c.set("circulating_blasts", "present" if result == "positive" else "absent", "blood blasts at the first LP")


def _csf_form(lps: list[dict[str, str]], c: _Collector) -> list[Any]:
    """The LPs as the schema in use reads them: ``{cytology, flow, traumatic}`` (version 3), else one
    ``{result, method}`` per LP (flow where read, else cytology; what that form cannot hold is listed)."""
    if csf_new_form(c.schema):
        return [lp for lp in lps if lp]
    out = []
    for i, lp in enumerate(lps, start=1):
        if "traumatic" in lp:
            c.not_in_schema.add("csf: traumatic")
        method = "flow" if "flow" in lp else "cytology" if "cytology" in lp else None
        if method is None:
            continue
        if method == "flow" and "cytology" in lp:
            c.notes.append(f"LP {i}: cytology {lp['cytology']} not used: the schema in use reads one method per LP "
                           "(flow cytometry, the more sensitive, is used)")
        out.append({"result": lp[method], "method": method})
    return out


def finding_lines(names: Iterable[str], schema: Any = None) -> str:
    """'vesicles, otoscopy: examine and enter; mri: not in the record' for a list of findings not found; with
    ``schema``, in its labels ('Forehead; Side of the facial palsy: examine and enter. Contrast MRI: not in the
    record': labels hold commas, so items are parted by semicolons), as a card says it."""
    names = list(names)
    named = (lambda n: schema.label(n) if n in schema.findings else n) if schema is not None else (lambda n: n)
    within, between = ("; ", ". ") if schema is not None else (", ", "; ")
    exam = [named(n) for n in names if n in EXAM]
    rest = [named(n) for n in names if n not in EXAM]
    parts = []
    if exam:
        parts.append(f"{within.join(exam)}: examine and enter")
    if rest:
        parts.append(f"{within.join(rest)}: not in the record")
    return between.join(parts)
