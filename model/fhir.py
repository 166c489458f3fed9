"""A FHIR R4 record as the findings of docs/design.md §2, through the one mapping table ``fhir_map.yaml``.

Pure: a bundle (a parsed JSON mapping) in, a :class:`FhirMapping` out, no HTTP and no clock unless no
``today`` is given. The table and the schema are those of one evidence folder (:func:`load_table` reads
the table and the schema beside it, ``priors/`` by default; :func:`map_bundle` takes both), so a copy of
``priors/`` with a new finding reads it from the record with no change here. The bundle is validated with
``fhir.resources`` (its R4B models, which read R4 for the resources palsy uses); the mapping then reads the
validated JSON:

- the index **palsy** is a Condition coded as facial palsy (ICD-10 G51.0, SNOMED CT): its ``onsetDateTime``
  is the date every window counts from (today when there is none; tests and imaging are then not placed);
- **context**: age group from ``Patient.birthDate`` at that date; lineage (and remission where the code
  says it) from ICD-10(-CM), ICD-O-3 and SNOMED CT; **exposures** from the table's ``medication`` rows (an
  administration, or a completed order) and ``procedure`` rows (a completed Procedure): each row names the
  finding and level it sets and the window (days or months before onset) it must fall in;
- **CSF**: the CSF Observations on or after onset are grouped into LPs by collection date; the first LP's
  white cells and protein give ``csf_profile``; red cells give ``traumatic``; blasts in the blood at the
  time of the first LP give ``circulating_blasts``;
- **MRI/CT** from coded DiagnosticReport conclusions after onset, the schema's precedence applied;
- any finding as palsy's own Observation (``urn:palsy:finding``), for what no standard code covers.

What no resource states stays unknown (``None``) and is listed in ``not_found``; a finding or level the
schema in use does not know (the schema is growing) is listed in ``not_in_schema``; every resource or code
not used is in ``ignored`` with the reason. Nothing is guessed: absence of a record is never "no".
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import paths
from palsy.model import safe_yaml as Y
from palsy.model import schema as SC

TABLE_FILE = "fhir_map.yaml"
ROLES = ("palsy", "finding", "medication", "procedure", "lab", "result", "laterality", "imaging")
#: The roles of exposures: a row sets its ``finding`` to its ``level`` when the resource falls in its ``window``.
EXPOSURE_ROLES = ("medication", "procedure")
#: The windows and limits the mapping itself reads (an exposure row names its own window besides these).
WINDOWS = ("adult_from_years", "pleocytosis_above_per_uL", "traumatic_red_cells_at_least_per_uL", "blasts_days_from_lp")
#: The units an exposure's window may be counted in.
WINDOW_UNITS = ("days", "months")
MEASURES = ("csf_wbc", "csf_protein", "csf_rbc", "csf_cytology", "csf_flow", "blood_blasts")
CSF_MEASURES = ("csf_wbc", "csf_protein", "csf_rbc", "csf_cytology", "csf_flow")
RESOURCE_TYPES = ("Patient", "Condition", "Observation", "MedicationAdministration", "MedicationRequest",
                  "Procedure", "DiagnosticReport")
#: The schema's precedence of MRI patterns (docs/design.md §2: "the first of mass > multiple > otomastoid > ...").
MRI_PRECEDENCE = ("mass", "multiple_nerve_or_leptomeningeal", "otomastoid_inflammation", "vii_viii_enhancement",
                  "facial_nerve_enhancement", "normal")
#: Findings a clinician examines at the bedside: "examine and enter" when the record does not say.
EXAM = ("forehead", "onset", "laterality", "eighth_nerve", "other_cranial_nerves", "peripheral_nerves", "vesicles",
        "otalgia", "otoscopy")
#: Findings whose standard codes are written back by :func:`example_bundle` (the others as palsy's own
#: Observations: a standard code for, e.g., remission would also say the lineage).
_ATTRIBUTE_STATUS_OK = {"final", "amended", "corrected"}
_UNITS_PER_UL = {"/uL": 1.0, "/ul": 1.0, "/mm3": 1.0, "/mm[3]": 1.0, "10*6/L": 1.0, "cells/uL": 1.0, "{cells}/uL": 1.0,
                 "10*9/L": 1000.0, "10*3/uL": 1000.0}


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
        return _months_before(day, n) if self.units.get(name) == "months" else day - dt.timedelta(days=n)


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
        The rows, the windows with their units, palsy's own code systems, the examples and the schema.

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
        elif row.role == "result" and row.result not in ("negative", "positive"):
            problems.append(f"{where} ({row.code}): result {row.result!r}; allowed: negative, positive")
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
                 schema, units)


# --- the schema in use (it is growing: nothing here needs an edit when it does) ---------------------------

UNKNOWN = "unknown"


def _levels(schema: SC.Schema, finding: str) -> tuple[str, ...]:
    """Levels a patient may give for ``finding`` in ``schema`` (empty when it is not one of its findings)."""
    try:
        return tuple(schema.allowed(finding))
    except (KeyError, ValueError):
        return ()


def _as_level(schema: SC.Schema, finding: str, raw: Any) -> Any:
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


# --- dates ----------------------------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def date_range(text: Any) -> tuple[dt.date, dt.date] | None:
    """The first and last day a FHIR date or dateTime can mean ('2024' -> Jan 1 to Dec 31); None if absent."""
    if not isinstance(text, str):
        return None
    m = _DATE.match(text)
    if not m:
        return None
    y, mo, d = int(m.group(1)), m.group(2), m.group(3)
    if mo is None:
        return dt.date(y, 1, 1), dt.date(y, 12, 31)
    mo = int(mo)
    if d is None:
        return dt.date(y, mo, 1), dt.date(y, mo, calendar.monthrange(y, mo)[1])
    day = dt.date(y, mo, int(d))
    return day, day


def _years_between(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _months_before(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return dt.date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


def _when(res: Mapping[str, Any], *fields: str) -> tuple[dt.date, dt.date] | None:
    for f in fields:
        value = res.get(f)
        if isinstance(value, dict):  # a Period: its start
            value = value.get("start")
        r = date_range(value)
        if r:
            return r
    return None


# --- the result -----------------------------------------------------------------------------------------

@dataclasses.dataclass
class FhirMapping:
    """What a bundle says in the schema's terms.

    Attributes
    ----------
    patient : dict
        For :func:`palsy.model.findings.parse_patient`: ``id`` and every finding found (nothing else).
    not_found : list of str
        Findings of the schema in use that no resource states (unknown, marginalised).
    ignored : list of dict
        ``{resource, code, why}`` for every resource or code not used.
    not_in_schema : list of str
        Findings (or levels) the mapping found that the schema in use does not know yet.
    notes : list of str
        Conflicts and partial codes, in words.
    onset : str or None
        The palsy's onset date (ISO) the windows count from; None when there was none (today was used).
    has_palsy : bool
        Whether the record holds a current facial palsy Condition.
    has_leukaemia : bool
        Whether the record codes a leukaemia the table knows (with or without its lineage).
    """

    patient: dict[str, Any]
    not_found: list[str]
    ignored: list[dict[str, str]]
    not_in_schema: list[str]
    notes: list[str]
    onset: str | None
    has_palsy: bool
    has_leukaemia: bool = False

    def __iter__(self):  # (patient, not_found, ignored), as the issue names them
        return iter((self.patient, self.not_found, self.ignored))


class _Collector:
    """Findings as they are read against the schema in use, with their conflicts."""

    def __init__(self, schema: SC.Schema) -> None:
        self.schema = schema
        self.values: dict[str, dict[str, list[str]]] = {}
        self.notes: list[str] = []
        self.ignored: list[dict[str, str]] = []
        self.not_in_schema: set[str] = set()
        self.leukaemia = False

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

    def resolved(self) -> dict[str, str]:
        out = {}
        for finding, levels in self.values.items():
            if len(levels) == 1:
                out[finding] = next(iter(levels))
            elif finding == "mri":
                out[finding] = next(lv for lv in MRI_PRECEDENCE if lv in levels)
            else:
                said = "; ".join(f"{lv} ({', '.join(sorted(set(w)))})" for lv, w in levels.items())
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
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(dict(bundle))
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())) or 'bundle'}: {e.get('msg', 'invalid')}"
                    for e in exc.errors(include_input=False, include_url=False)[:20]]
        raise FhirError(problems or ["not a valid FHIR R4 Bundle"], source) from None
    except (TypeError, ValueError) as exc:
        raise FhirError([f"not a valid FHIR R4 Bundle ({type(exc).__name__})"], source) from None
    return dict(bundle)


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
    today = today or dt.date.today()
    c = _Collector(schema)
    entries = resources(bundle)
    patient_res, patient_urls = _the_patient(entries, source)
    for where, res in entries:
        _check_subject(res, patient_res, patient_urls, where, source)

    # the index palsy: current facial-palsy Conditions; the episode starts at the earliest onset
    palsies, sides, side_unknown = [], set(), False
    for where, res in entries:
        if res.get("resourceType") != "Condition":
            continue
        rows = [r for cd in _codings(res.get("code")) for r in table.lookup(cd, "palsy")]
        if not rows:
            continue
        why = _condition_unusable(res)
        if why:
            c.ignore(_ref(res, where), _code_text(_codings(res.get("code"))[0]), why)
            continue
        palsies.append(res)
        got = {r.side for bs in res.get("bodySite") or [] for cd in _codings(bs) for r in table.lookup(cd, "laterality")}
        sides |= got
        side_unknown |= not got
    onset = None
    if palsies:
        starts = [r for r in (_when(p, "onsetDateTime", "onsetPeriod") for p in palsies) if r]
        onset = min(s[0] for s in starts) if starts else None
        if "both" in sides or {"left", "right"} <= sides:
            c.set("laterality", "bilateral", "facial palsy on both sides")
        elif sides and not side_unknown:
            c.set("laterality", "unilateral", "facial palsy on one side")
    ref_day = onset or today
    if palsies and onset is None:
        c.notes.append("the facial palsy Condition has no onset date: windows count from today, and LPs and imaging "
                       "cannot be placed")
    if not palsies:
        c.notes.append("no current facial palsy Condition (ICD-10 G51.0 or SNOMED CT) in the record: windows count "
                       "from today")

    # who the patient is
    born = date_range(patient_res.get("birthDate"))
    if born:
        adult = table.window("adult_from_years")
        ages = {_years_between(born[0], ref_day) >= adult, _years_between(born[1], ref_day) >= adult}
        if len(ages) == 1:
            c.set("age_group", "adult" if ages.pop() else "child", "birth date")
        else:
            c.notes.append("age_group: the birth date is too imprecise to tell child from adult at onset")

    labs: list[tuple[dt.date, str, dict[str, Any], str]] = []
    for where, res in entries:
        rt = res.get("resourceType")
        ref = _ref(res, where)
        if rt == "Patient":
            continue
        if rt not in RESOURCE_TYPES:
            c.ignore(ref, "-", f"resource type {rt} is not read")
        elif rt == "Condition":
            _condition(res, ref, table, c)
        elif rt in ("MedicationAdministration", "MedicationRequest"):
            _medication(res, ref, table, c, ref_day)
        elif rt == "Procedure":
            _procedure(res, ref, table, c, ref_day)
        elif rt == "DiagnosticReport":
            _report(res, ref, table, c, onset)
        elif rt == "Observation":
            lab = _observation(res, ref, table, c)
            if lab:
                labs.append(lab)
    lps = _lumbar_punctures(labs, table, c, onset)
    values = c.resolved()
    patient: dict[str, Any] = {"id": str(patient_res.get("id") or "patient")}
    patient.update({k: v for k, v in values.items()})
    if lps:
        patient[schema.lp.name] = lps
    not_found = [f for f in schema.findings if f not in patient]
    return FhirMapping(patient, not_found, c.ignored, sorted(c.not_in_schema), c.notes,
                       onset.isoformat() if onset else None, bool(palsies), c.leukaemia)


def _the_patient(entries: list[tuple[str, dict[str, Any]]], source: str) -> tuple[dict[str, Any], set[str]]:
    pats = [(w, r) for w, r in entries if r.get("resourceType") == "Patient"]
    ids = {r.get("id") for _, r in pats}
    if not pats:
        raise FhirError(["the bundle holds no Patient resource; give the patient the findings are about"], source)
    if len(ids) > 1 or (len(pats) > 1 and None in ids):
        raise FhirError([f"the bundle holds {len(pats)} different Patient resources; give one patient's record"], source)
    res = pats[0][1]
    urls = {w for w, _ in pats} | ({f"Patient/{res['id']}"} if res.get("id") else set())
    return res, urls


def _check_subject(res: Mapping[str, Any], patient: Mapping[str, Any], urls: set[str], where: str, source: str) -> None:
    for field in ("subject", "patient"):
        ref = (res.get(field) or {}).get("reference") if isinstance(res.get(field), dict) else None
        if not isinstance(ref, str):
            continue
        if ref.startswith("Patient/") or ref.startswith("urn:"):
            tail = ref.split("/_history", 1)[0]
            if tail not in urls and not any(tail.endswith("/" + u) for u in urls if u.startswith("Patient/")):
                raise FhirError([f"{res.get('resourceType')} ({where}): its {field} is another patient; give one "
                                 f"patient's record"], source)


def _condition_unusable(res: Mapping[str, Any]) -> str | None:
    ver = {cd.get("code") for cd in _codings(res.get("verificationStatus"))}
    clin = {cd.get("code") for cd in _codings(res.get("clinicalStatus"))}
    if "entered-in-error" in ver:
        return "entered in error"
    if ver & {"refuted"}:
        return "refuted"
    if ver & {"unconfirmed", "provisional", "differential"}:
        return "not confirmed"
    if clin & {"inactive", "resolved", "remission"} and not clin & {"active", "recurrence", "relapse"}:
        return "not current (inactive or resolved)"
    return None


def _condition(res: Mapping[str, Any], ref: str, table: Table, c: _Collector) -> None:
    codings = _codings(res.get("code"))
    ver = {cd.get("code") for cd in _codings(res.get("verificationStatus"))}
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
            c.leukaemia |= r.finding == "lineage"
            if r.level is None:
                if r.note:
                    c.notes.append(f"{r.finding}: {r.display}: {r.note}")
                continue
            c.set(r.finding, r.level, r.display)
    if not used:
        for cd in codings or [{}]:
            c.ignore(ref, _code_text(cd), "code not in the mapping table")


def _in_window(when: tuple[dt.date, dt.date] | None, start: dt.date, end: dt.date) -> bool | None:
    """True when every day ``when`` can mean is within [start, end], False when none is, None otherwise."""
    if when is None:
        return None
    if start <= when[0] and when[1] <= end:
        return True
    if when[1] < start or when[0] > end:
        return False
    return None


def _exposure(rows: tuple[Row, ...], when: tuple[dt.date, dt.date] | None, ref: str, code: str, table: Table,
              c: _Collector, end: dt.date) -> None:
    """Set what each of ``rows`` says (its finding and level) when ``when`` falls in its window before ``end``."""
    targets: dict[tuple[str, str, str], str] = {}  # (finding, level, window): the first row's drug or procedure
    for r in rows:
        targets.setdefault((r.finding, r.level, r.window), r.display)
    for (finding, level, window), display in targets.items():
        inside = _in_window(when, table.since(window, end), end)
        named = f" ({finding})" if len(targets) > 1 else ""
        if inside:
            c.set(finding, level, f"{display} in the window before onset")
        elif inside is None:
            c.ignore(ref, code, f"date missing or too imprecise to place in the window before onset{named}")
        else:
            c.ignore(ref, code, f"outside the window before onset{named}")


def _medication(res: Mapping[str, Any], ref: str, table: Table, c: _Collector, end: dt.date) -> None:
    codings = _codings(res.get("medicationCodeableConcept"))
    rows = tuple(r for cd in codings for r in table.lookup(cd, "medication"))
    if not rows:
        c.ignore(ref, _code_text(codings[0]) if codings else "medicationReference",
                 "medication not in the mapping table (a medicationReference is not followed)")
        return
    code = _code_text(codings[0])
    status = res.get("status")
    if res["resourceType"] == "MedicationAdministration":
        if status not in ("completed", "in-progress"):
            c.ignore(ref, code, f"administration status {status}: not a dose given")
            return
        when = _when(res, "effectiveDateTime", "effectivePeriod")
    else:
        if status != "completed":
            c.ignore(ref, code, f"order status {status}: an order is not a dose (only completed orders are read)")
            return
        when = _when(res, "authoredOn")
    _exposure(rows, when, ref, code, table, c, end)


def _procedure(res: Mapping[str, Any], ref: str, table: Table, c: _Collector, end: dt.date) -> None:
    codings = _codings(res.get("code"))
    rows = tuple(r for cd in codings for r in table.lookup(cd, "procedure"))
    if not rows:
        c.ignore(ref, _code_text(codings[0]) if codings else "-", "procedure not in the mapping table")
        return
    code = _code_text(codings[0])
    if res.get("status") != "completed":
        c.ignore(ref, code, f"procedure status {res.get('status')}: not done")
        return
    _exposure(rows, _when(res, "performedDateTime", "performedPeriod"), ref, code, table, c, end)


def _report(res: Mapping[str, Any], ref: str, table: Table, c: _Collector, onset: dt.date | None) -> None:
    codings = [cd for cc in res.get("conclusionCode") or [] for cd in _codings(cc)]
    rows = [(cd, r) for cd in codings for r in table.lookup(cd, "imaging")]
    if not rows:
        c.ignore(ref, _code_text(codings[0]) if codings else "-", "no conclusion code in the mapping table")
        return
    code = _code_text(rows[0][0])
    if res.get("status") not in _ATTRIBUTE_STATUS_OK | {"appended"}:
        c.ignore(ref, code, f"report status {res.get('status')}: not final")
        return
    when = _when(res, "effectiveDateTime", "effectivePeriod", "issued")
    if onset is None or when is None or when[0] < onset:
        c.ignore(ref, code, "no palsy onset date to place it" if onset is None else
                 "before the palsy's onset (or undated)")
        return
    for _, r in rows:
        c.set("mri", r.level, f"{r.modality}: {r.display}")


def _result_of(res: Mapping[str, Any], table: Table, schema: SC.Schema) -> str | None:
    for cd in _codings(res.get("valueCodeableConcept")):
        for r in table.lookup(cd, "result"):
            return r.result
        if cd.get("system") == table.local["level_system"] and cd.get("code") in schema.lp.results:
            return str(cd["code"])
    for cc in res.get("interpretation") or []:
        for cd in _codings(cc):
            for r in table.lookup(cd, "result"):
                return r.result
    return None


def _per_uL(q: Mapping[str, Any]) -> float | None:
    unit = q.get("code") or q.get("unit")
    factor = _UNITS_PER_UL.get(str(unit)) if unit else None
    if factor is None or q.get("comparator") or not isinstance(q.get("value"), int | float):
        return None
    return float(q["value"]) * factor


def _observation(res: Mapping[str, Any], ref: str, table: Table, c: _Collector):
    codings = _codings(res.get("code"))
    status = res.get("status")
    for cd in codings:
        if cd.get("system") == table.local["finding_system"]:  # palsy's own: any finding of the schema
            if status not in _ATTRIBUTE_STATUS_OK:
                c.ignore(ref, _code_text(cd), f"observation status {status}: not final")
                return None
            finding = str(cd.get("code"))
            levels = [v.get("code") for v in _codings(res.get("valueCodeableConcept"))
                      if v.get("system") == table.local["level_system"]]
            if not levels:
                c.ignore(ref, _code_text(cd), f"no {table.local['level_system']} value")
            elif finding == c.schema.lp.name:
                c.ignore(ref, _code_text(cd), "LPs are read from their CSF results, not as one finding")
            else:
                c.set(finding, str(levels[0]), "entered as palsy's own observation")
            return None
        rows = table.lookup(cd, "lab")
        if rows:
            if status not in _ATTRIBUTE_STATUS_OK:
                c.ignore(ref, _code_text(cd), f"observation status {status}: not final")
                return None
            when = _when(res, "effectiveDateTime", "effectivePeriod", "issued")
            if when is None or when[0] != when[1]:
                c.ignore(ref, _code_text(cd), "no collection date (a day) to place it")
                return None
            return when[0], rows[0].measure, dict(res), ref
        frows = table.lookup(cd, "finding")
        if frows:
            for r in frows:
                if r.level:
                    c.set(r.finding, r.level, r.display)
            return None
    c.ignore(ref, _code_text(codings[0]) if codings else "-", "code not in the mapping table")
    return None


def _lumbar_punctures(labs: list[tuple[dt.date, str, dict[str, Any], str]], table: Table, c: _Collector,
                      onset: dt.date | None) -> list[dict[str, str]]:
    """LPs from CSF results grouped by collection date (on or after onset), in order; sets csf_profile,
    circulating_blasts; returns the csf list in the form the schema in use reads."""
    groups: dict[dt.date, dict[str, list[tuple[dict[str, Any], str]]]] = {}
    blasts = []
    for day, measure, res, ref in labs:
        if measure == "blood_blasts":
            blasts.append((day, res, ref))
            continue
        if onset is None or day < onset:
            c.ignore(ref, measure, "no palsy onset date to place it" if onset is None else "before the palsy's onset")
            continue
        groups.setdefault(day, {}).setdefault(measure, []).append((res, ref))
    days = sorted(groups)
    most = int(c.schema.lp.max_lps)
    if len(days) > most:
        for d in days[most:]:
            c.notes.append(f"an LP on {d.isoformat()} is beyond the {most} the schema reads: not used")
        days = days[:most]
    lps = []
    for i, day in enumerate(days, start=1):
        g = groups[day]
        lp: dict[str, str] = {}
        for method, measure in (("cytology", "csf_cytology"), ("flow", "csf_flow")):
            got = {_result_of(res, table, c.schema) for res, _ in g.get(measure, [])}
            got.discard(None)
            if len(got) == 1:
                lp[method] = got.pop()
            elif len(got) > 1:
                c.notes.append(f"LP {i} ({day.isoformat()}): {method} reported both positive and negative; left unknown")
            for res, ref in g.get(measure, []):
                if _result_of(res, table, c.schema) is None:
                    c.ignore(ref, measure, "result not coded as positive or negative")
        rbc = [_per_uL(res.get("valueQuantity") or {}) for res, _ in g.get("csf_rbc", [])]
        rbc = [x for x in rbc if x is not None]
        if rbc:
            lp["traumatic"] = "yes" if max(rbc) >= table.window("traumatic_red_cells_at_least_per_uL") else "no"
        if i == 1:
            _profile(g, table, c)
            _blasts(blasts, day, table, c)
        lps.append(lp)
    return _csf_form(lps, c)


def _profile(g: Mapping[str, list[tuple[dict[str, Any], str]]], table: Table, c: _Collector) -> None:
    wbc = [_per_uL(res.get("valueQuantity") or {}) for res, _ in g.get("csf_wbc", [])]
    wbc = [x for x in wbc if x is not None]
    if not wbc:
        if g.get("csf_wbc"):
            c.notes.append("csf_profile: the first LP's white-cell count has a unit palsy cannot read (or a comparator)")
        return
    if max(wbc) > table.window("pleocytosis_above_per_uL"):
        c.set("csf_profile", "pleocytosis", "first LP: white cells above the limit")
        return
    raised = None
    for res, _ in g.get("csf_protein", []):
        q = res.get("valueQuantity") or {}
        highs = [rr.get("high") for rr in res.get("referenceRange") or [] if isinstance(rr.get("high"), dict)]
        interp = {cd.get("code") for cc in res.get("interpretation") or [] for cd in _codings(cc)}
        if highs and isinstance(q.get("value"), int | float) and (highs[0].get("code") or highs[0].get("unit")) == \
                (q.get("code") or q.get("unit")) and not q.get("comparator"):
            raised = float(q["value"]) > float(highs[0]["value"])
        elif interp & {"H", "HH", "HU"}:
            raised = True
        elif interp & {"N", "L", "LL", "LU"}:
            raised = False
    if raised is None:
        c.notes.append("csf_profile: the first LP's protein has no reference range or interpretation; left unknown")
        return
    c.set("csf_profile", "protein_only" if raised else "normal", "first LP: white cells and protein")


def _blasts(blasts: list[tuple[dt.date, dict[str, Any], str]], lp_day: dt.date, table: Table, c: _Collector) -> None:
    limit = int(table.window("blasts_days_from_lp"))
    near = sorted((abs((d - lp_day).days), res) for d, res, _ in blasts if abs((d - lp_day).days) <= limit)
    for _, res in near[:1]:
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


# --- the table in reverse: example bundles from patient files ---------------------------------------------

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
        value = _as_level(schema, finding, value)
        if value is None or (isinstance(value, str) and value.strip().lower() == UNKNOWN):
            continue
        value = str(value)
        if finding in ("age_group", "laterality"):
            continue
        if finding == "lineage" and rows("finding", finding="lineage", level=value):
            add({"resourceType": "Condition", "_kind": "leukaemia",
                 "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                    "code": "confirmed"}]},
                 "code": {"coding": [coding(r) for r in rows("finding", finding="lineage", level=value)[:2]]}})
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


def finding_lines(names: Iterable[str]) -> str:
    """'vesicles, otoscopy: examine and enter; mri: not in the record' for a list of findings not found."""
    names = list(names)
    exam = [n for n in names if n in EXAM]
    rest = [n for n in names if n not in EXAM]
    parts = []
    if exam:
        parts.append(f"{', '.join(exam)}: examine and enter")
    if rest:
        parts.append(f"{', '.join(rest)}: not in the record")
    return "; ".join(parts)
