"""A hospital's registry of adjudicated palsies (issue 23, docs/registry.md): the format and its reader.

One row per patient: the findings of the schema at the time of the palsy, exactly as a patient file has
them (the LPs included), and the registry's own fields:

``site``
    who contributed the row (a short code: letters, digits, ``-``, ``_``, ``.``; never a person's name);
``period``
    the month of the palsy, ``YYYY-MM`` (a finer date is refused);
``final_cause``
    one of the model's causes, ``other`` (with ``other_cause``: a short diagnosis in words) or
    ``undetermined``;
``established_by``
    how the cause was established: one or more of :data:`ESTABLISHED` (``;``-separated in CSV);
``follow_up_months``
    the follow-up after the palsy, in whole months (unknown allowed);
``tool_probabilities``
    optional: what palsy answered at the time, P(cause) for each cause (``palsy registry from-feedback``
    fills it from the service's log; CSV columns ``tool_p_<cause>``), for the calibration of the tool's
    own answers in ``palsy check``.

A registry is de-identified by construction: only the schema's findings and these fields exist, so a
name, a record number, a date of birth, an exact age (the schema has ``age_group``) or a day is refused
with a message naming the row and the field. Unknown is not negative: an empty cell, ``unknown`` or a
missing finding is marginalised, as in a patient file.

Two file forms: YAML (``{registry_version: 1, rows: [...]}``, each row a patient file's mapping plus the
registry's fields) and CSV (one header line of field names; the LPs in columns ``csf_<n>_<key>``, e.g.
``csf_1_cytology``, ``csf_1_flow``, ``csf_1_traumatic``; empty cells unknown). Bad input is an
:class:`~palsy.model.findings.InputError` naming the file, the row (and CSV line), the field, the value
and what is allowed; every problem of the file is listed at once.

``priors/registry.yaml`` (:func:`settings`) names the registry files a fit uses and the registry's
settings (the site effect's prior, the selection check's tail, the suppression threshold of exported
counts). Numpy, pyyaml and the standard library only.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import difflib
import hashlib
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from palsy.model.schema import UNKNOWN, Schema

FORMAT_VERSION = 1
#: How a final cause may have been established.
ESTABLISHED = ("tissue", "csf", "culture", "pcr", "response", "follow_up")
OTHER, UNDETERMINED = "other", "undetermined"
#: The registry's own fields (besides the schema's findings).
FIELDS = ("site", "period", "final_cause", "other_cause", "established_by", "follow_up_months", "tool_probabilities")
TOOL_COLUMN = "tool_p_"
#: Keys that would identify a patient: refused with a message that says why.
IDENTIFYING = ("name", "first_name", "last_name", "surname", "initials", "dob", "date_of_birth", "birth_date",
               "birthdate", "date", "onset_date", "admission_date", "age", "age_years", "age_months", "mrn",
               "nhs_number", "hospital_number", "patient_id", "id", "record", "address", "postcode", "zip",
               "phone", "email", "description", "notes", "comment")
SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
FINER_DATE_RE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}")
OTHER_TEXT_MAX = 80
MAX_FOLLOW_UP = 600
MAX_ROWS = 100_000
#: The smallest suppression threshold of exported counts, and why.
MIN_THRESHOLD = 3
THRESHOLD_WHY = (f"give a whole number from {MIN_THRESHOLD} to 1000: below {MIN_THRESHOLD} a published count of 1 "
                 "or 2 patients, or a range of 0 to 2, can single out a patient and their findings")
LP_COLUMN_RE = re.compile(r"^(?P<name>[a-z_]+)_(?P<n>\d+)_(?P<key>[a-z_]+)$")
SETTINGS_FILE = "registry.yaml"


@dataclasses.dataclass(frozen=True)
class Row:
    """One adjudicated palsy: where it is in its file, the registry's fields and the findings."""

    number: int  # 1-based row number in its file
    where: str  # "row 3" or "row 3 (line 4)"
    site: str
    period: str  # YYYY-MM
    patient: F.Patient
    cause: str  # a modelled cause, ``other`` or ``undetermined``
    other_text: str | None
    established_by: tuple[str, ...]
    follow_up_months: int | None
    tool_probabilities: dict[str, float] | None = None

    @property
    def in_scope(self) -> bool:
        """Inside the model's population (a peripheral palsy after the leukaemia's diagnosis)."""
        return self.patient.in_scope

    @property
    def modelled(self) -> bool:
        """Its final cause is one of the model's causes."""
        return self.cause not in (OTHER, UNDETERMINED)


@dataclasses.dataclass(frozen=True)
class Registry:
    """The rows of one or more registry files, validated, with the hash of their bytes."""

    sources: tuple[str, ...]
    rows: tuple[Row, ...]
    causes: tuple[str, ...]
    hash: str

    @property
    def sites(self) -> tuple[str, ...]:
        """The sites in order of first appearance."""
        return tuple(dict.fromkeys(r.site for r in self.rows))

    @property
    def fitted_rows(self) -> tuple[Row, ...]:
        """The rows that enter the fit: in scope, with a modelled or undetermined cause."""
        return tuple(r for r in self.rows if r.in_scope and r.cause != OTHER)

    def to_rows(self) -> list[dict[str, Any]]:
        """The rows as YAML-ready mappings (a registry file's ``rows``)."""
        return [row_to_dict(r) for r in self.rows]


def row_to_dict(r: Row) -> dict[str, Any]:
    """One row as a YAML registry row: findings as a patient file has them (unknown left out), then the
    registry's fields."""
    out: dict[str, Any] = {}
    for name, value in r.patient.to_dict().items():
        if name in ("id", "description") or value in (UNKNOWN, []):
            continue
        out[name] = value
    out.update(site=r.site, period=r.period, final_cause=r.cause)
    if r.other_text is not None:
        out["other_cause"] = r.other_text
    if r.established_by:
        out["established_by"] = list(r.established_by)
    if r.follow_up_months is not None:
        out["follow_up_months"] = r.follow_up_months
    if r.tool_probabilities is not None:
        out["tool_probabilities"] = dict(r.tool_probabilities)
    return out


# --- reading ---------------------------------------------------------------------------------------

def read(path: str | Path, schema: Schema, causes: tuple[str, ...]) -> Registry:
    """Read and validate a registry file (``.csv``, or YAML: ``.yaml``/``.yml``).

    Parameters
    ----------
    path : path
        The registry file.
    schema : Schema
        The finding schema the rows follow (the evidence's).
    causes : tuple of str
        The model's causes (``final_cause`` may also be ``other`` or ``undetermined``).

    Raises
    ------
    findings.InputError
        Naming the file, with every problem: the row (and CSV line), the field, the value and what is
        allowed.
    """
    path = Path(path)
    if not str(path).strip():
        raise F.InputError(["an empty path; give a registry file (CSV or YAML)"], "command line")
    try:
        data = Y.read_bytes(path)
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw_rows = _csv_rows(data, path, schema)
    elif suffix in (".yaml", ".yml"):
        raw_rows = _yaml_rows(data, path)
    else:
        raise F.InputError([f"{path.name}: the file type {suffix or '(none)'!r} is not a registry; give a .csv, "
                            ".yaml or .yml file"], str(path))
    return from_mappings(raw_rows, schema, causes, source=str(path), digest=hashlib.sha256(data).hexdigest())


def from_mappings(raw_rows: list[tuple[str, Any]], schema: Schema, causes: tuple[str, ...], *, source: str,
                  digest: str | None = None) -> Registry:
    """A :class:`Registry` from ``(where, mapping)`` pairs (a file's rows, or rows made by palsy itself).

    Raises
    ------
    findings.InputError
        Listing every problem, each prefixed by the row it is in.
    """
    if len(raw_rows) > MAX_ROWS:
        raise F.InputError([f"{len(raw_rows):,} rows; at most {MAX_ROWS:,} are read from one file"], source)
    problems: list[str] = []
    rows = []
    for number, (where, raw) in enumerate(raw_rows, start=1):
        row, found = _row(number, where, raw, schema, causes)
        problems += found
        if row is not None:
            rows.append(row)
    if not raw_rows:
        problems.append("no rows; a registry has one row per adjudicated palsy")
    if problems:
        raise F.InputError(problems, source)
    if digest is None:
        import json

        digest = hashlib.sha256(json.dumps([row_to_dict(r) for r in rows], sort_keys=True).encode()).hexdigest()
    return Registry((source,), tuple(rows), tuple(causes), digest)


def combine(registries: list[Registry]) -> Registry:
    """Several registry files as one (their hashes combined in order)."""
    if len(registries) == 1:
        return registries[0]
    h = hashlib.sha256()
    for r in registries:
        h.update(r.hash.encode())
    rows = tuple(row for r in registries for row in r.rows)
    return Registry(tuple(s for r in registries for s in r.sources), rows, registries[0].causes, h.hexdigest())


def _yaml_rows(data: bytes, path: Path) -> list[tuple[str, Any]]:
    doc = Y.loads(Y.decode(data, path), path)
    allowed = "give {registry_version: 1, rows: [...]} (one row per adjudicated palsy)"
    if not isinstance(doc, Mapping):
        raise F.InputError([f"the file is not a registry: {allowed}"], str(path))
    problems = [f"{Y.brief(k)}: unknown top-level key; {allowed}" for k in doc if k not in ("registry_version", "rows")]
    if doc.get("registry_version") != FORMAT_VERSION:
        problems.append(f"registry_version: {Y.brief(doc.get('registry_version'))} is not allowed; allowed: {FORMAT_VERSION}")
    rows = doc.get("rows")
    if not isinstance(rows, list):
        problems.append(f"rows: {Y.brief(rows)} is not a list of rows; {allowed}")
    if problems:
        raise F.InputError(problems, str(path))
    return [(f"row {i}", r) for i, r in enumerate(rows, start=1)]


def _csv_rows(data: bytes, path: Path, schema: Schema) -> list[tuple[str, Any]]:
    """CSV rows as mappings like a YAML row's: empty cells left out, the LP columns gathered into ``csf``."""
    text = Y.decode(data, path)
    if text.startswith("\ufeff"):  # a byte-order mark (spreadsheets write one)
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise F.InputError(["an empty file; the first line names the columns"], str(path)) from None
    except csv.Error as exc:
        raise F.InputError([f"not CSV: {exc} (line 1)"], str(path)) from None
    header = [h.strip() for h in header]
    if len(header) == 1 and ";" in header[0]:
        raise F.InputError([semicolon_message(header[0])], str(path))
    problems = []
    seen: set[str] = set()
    for h in header:
        if not h:
            problems.append("line 1: a column without a name; every column needs one")
        elif h in seen:
            problems.append(f"line 1: the column {h!r} is given twice; give each column once")
        seen.add(h)
    if problems:
        raise F.InputError(problems, str(path))
    lp_name = schema.lp.name
    out = []
    line = 1
    try:
        for number, cells in enumerate(reader, start=1):
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) != len(header):
                problems.append(f"row {number} (line {line}): {len(cells)} cells for {len(header)} columns")
                continue
            row: dict[str, Any] = {}
            lps: dict[int, dict[str, str]] = {}
            tool: dict[str, str] = {}
            for h, cell in zip(header, cells, strict=True):
                value = cell.strip()
                if h.startswith(TOOL_COLUMN):
                    if value:
                        tool[h[len(TOOL_COLUMN):]] = value
                    continue
                m = LP_COLUMN_RE.match(h)
                if m and m["name"] == lp_name:
                    if value:
                        lps.setdefault(int(m["n"]), {})[m["key"]] = value
                    continue
                if value:
                    row[h] = value
            if lps:
                order = sorted(lps)
                if order != list(range(1, len(order) + 1)):
                    problems.append(f"row {number} (line {line}): {lp_name}: LPs numbered {order}; number them "
                                    f"1, 2, ... in order, without gaps ({lp_name}_1_<method>, {lp_name}_2_<method>)")
                    continue
                row[lp_name] = [lps[i] for i in order]
            if tool:
                row["tool_probabilities"] = tool
            out.append((f"row {number} (line {line})", row))
    except csv.Error as exc:
        raise F.InputError([f"not CSV: {exc} (line {line + 1})"], str(path)) from None
    if problems:
        raise F.InputError(problems, str(path))
    return out


#: What an answer's ``model.registry`` and a feedback-log line need of a fit's registry metadata.
ANSWER_KEYS = ("used", "hash", "rows", "base_rate")


def for_answer(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a fit's registry metadata an answer needs: whether a registry was used, its hash, the rows
    fitted and the base rate's summary (never site codes, file names or the ``other`` rows' texts)."""
    meta = meta or {}
    if not meta.get("used"):
        return {"used": False}
    rows = meta.get("rows") or {}
    return {"used": True, "hash": meta.get("hash"),
            "rows": {k: rows[k] for k in ("fitted", "modelled", "undetermined") if k in rows},
            "base_rate": meta.get("base_rate")}


def semicolon_message(header: str) -> str:
    """The one message for a CSV file saved with ';' between its columns (a spreadsheet's default in much of
    Europe), whose header reads as a single column."""
    return (f"the file looks ';'-separated (its first line {Y.brief(header[:60])} is one column); save it "
            "comma-separated (in a spreadsheet: CSV, comma-delimited)")


def shown(value: Any) -> str:
    """A value for a message: ``missing`` for an absent value (never Python's ``None``)."""
    return "missing" if value is None else Y.brief(value)


def duplicate_rows(reg: Registry) -> list[str]:
    """Warnings for rows that are identical in every field within or across the registry's files (a row
    pasted twice would count its patient twice), each naming the rows."""
    import json

    groups: dict[str, list[Row]] = {}
    for r in reg.rows:
        key = json.dumps({**row_to_dict(r), "site": r.site.lower()}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(r)
    out = []
    for rows in groups.values():
        if len(rows) > 1:
            out.append(f"{len(rows)} identical rows ({', '.join(r.where for r in rows)}): a row pasted twice counts its "
                       "patient twice; remove the copies unless these are different patients with the same findings "
                       "in the same month")
    return out


def _row(number: int, where: str, raw: Any, schema: Schema, causes: tuple[str, ...]) -> tuple[Row | None, list[str]]:
    """One row, or its problems (each prefixed by ``where``)."""
    if not isinstance(raw, Mapping):
        return None, [f"{where}: {Y.brief(raw)} is not a row; give a mapping of findings and {', '.join(FIELDS)}"]
    problems: list[str] = []
    known = (*schema.findings, *FIELDS)
    findings: dict[str, Any] = {}
    for key, value in raw.items():
        if key in schema.findings:
            findings[key] = value
        elif key not in FIELDS:
            problems.append(f"{where}: {_unknown_key(key, known, schema)}")
    site = raw.get("site")
    if not (isinstance(site, str) and SITE_RE.match(site)):
        problems.append(f"{where}: site: {shown(site)} is not allowed; give the site's short code: 1 to 40 letters, "
                        "digits, '-', '_' or '.', starting with a letter or digit")
    period = _period(raw.get("period"), where, problems)
    cause = raw.get("final_cause")
    allowed_causes = (*causes, OTHER, UNDETERMINED)
    if cause not in allowed_causes:
        near = difflib.get_close_matches(str(cause), allowed_causes, n=1) if isinstance(cause, str) else []
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        problems.append(f"{where}: final_cause: {shown(cause)} is not allowed{hint}; allowed: {', '.join(allowed_causes)}")
    other = raw.get("other_cause")
    other_text = None
    if cause == OTHER:
        other_text = _other_text(other, where, problems)
    elif other is not None and str(other).strip():
        problems.append(f"{where}: other_cause: {Y.brief(other)} is given but final_cause is {Y.brief(cause)}; "
                        "other_cause is only for final_cause: other")
    established = _established(raw.get("established_by"), where, problems)
    if not established and cause in allowed_causes and cause != UNDETERMINED:
        problems.append(f"{where}: established_by: missing; say how the final cause {cause!r} was established: "
                        f"one or more of {', '.join(ESTABLISHED)}")
    follow_up = _follow_up(raw.get("follow_up_months"), where, problems)
    tool = _tool(raw.get("tool_probabilities"), where, causes, problems)
    try:
        patient = F.parse_patient(findings, where, schema=schema)
    except F.InputError as exc:
        problems += [f"{where}: {p}" for p in exc.problems]
        patient = None
    if problems or patient is None:
        return None, problems
    return Row(number, where, site, period, patient, cause, other_text, established, follow_up, tool), []


def _unknown_key(key: Any, known: tuple[str, ...], schema: Schema) -> str:
    text = str(key).strip().lower()
    if text in IDENTIFYING or any(w in text for w in ("name", "birth", "dob", "mrn", "address", "phone", "email")):
        extra = " (the schema has age_group)" if text.startswith("age") else ""
        return (f"{Y.brief(key)}: identifying fields are not allowed: a registry is de-identified by construction "
                f"and holds only the schema's findings{extra} and {', '.join(FIELDS)} (dates as months: period)")
    if text.startswith(f"{schema.lp.name}_"):
        return (f"{Y.brief(key)}: not an LP column; give {schema.lp.name}_<n>_<key> with <key> one of "
                f"{', '.join((*schema.lp.methods, 'traumatic'))} (CSV) or a {schema.lp.name} list (YAML)")
    near = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return (f"{Y.brief(key)}: unknown field{hint}; allowed: the schema's findings ({', '.join(schema.findings)}) "
            f"and {', '.join(FIELDS)}")


def _period(raw: Any, where: str, problems: list[str]) -> str:
    if isinstance(raw, (datetime.date, datetime.datetime)) or (isinstance(raw, str) and FINER_DATE_RE.match(raw.strip())):
        problems.append(f"{where}: period: {Y.brief(str(raw))} is a date finer than a month, which is not allowed "
                        "(de-identified by construction); give the month as YYYY-MM")
        return ""
    text = raw.strip() if isinstance(raw, str) else None
    m = PERIOD_RE.match(text) if text else None
    if m is None or not 1990 <= int(m[1]) <= 2100:
        problems.append(f"{where}: period: {shown(raw)} is not allowed; give the month of the palsy as YYYY-MM "
                        "(1990 to 2100; quote it in YAML)")
        return ""
    return text


def _other_text(raw: Any, where: str, problems: list[str]) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        problems.append(f"{where}: other_cause: missing; with final_cause: other give the diagnosis in a few words "
                        "(e.g. 'ATRA intracranial hypertension')")
        return None
    text = " ".join(raw.split())
    if len(text) > OTHER_TEXT_MAX or re.search(r"\d{3,}", text) or "@" in text:
        problems.append(f"{where}: other_cause: {Y.brief(text)} is not allowed; give the diagnosis in at most "
                        f"{OTHER_TEXT_MAX} characters, without dates, numbers of 3 or more digits or addresses "
                        "(de-identified by construction)")
        return None
    return text


def _established(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ()
    items = [x.strip() for x in raw.split(";")] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        problems.append(f"{where}: established_by: {Y.brief(raw)} is not allowed; give one or more of "
                        f"{', '.join(ESTABLISHED)} (a list, or ';'-separated in CSV)")
        return ()
    out = []
    for x in items:
        if x not in ESTABLISHED:
            near = difflib.get_close_matches(str(x), ESTABLISHED, n=1) if isinstance(x, str) else []
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"{where}: established_by: {Y.brief(x)} is not allowed{hint}; allowed: {', '.join(ESTABLISHED)}")
        elif x in out:
            problems.append(f"{where}: established_by: {x!r} is given twice; give each once")
        else:
            out.append(x)
    return tuple(out)


def _tool(raw: Any, where: str, causes: tuple[str, ...], problems: list[str]) -> dict[str, float] | None:
    """What palsy answered at the time: P(cause) for every cause, adding up to 1."""
    if raw is None:
        return None
    allowed = f"give P(cause) from 0 to 1 for each of {', '.join(causes)}, adding up to 1"
    if not isinstance(raw, Mapping) or set(raw) != set(causes):
        problems.append(f"{where}: tool_probabilities: {Y.brief(raw)} is not allowed; {allowed}")
        return None
    out = {}
    for c in causes:
        try:
            if isinstance(raw[c], str) and not F.PLAIN_NUMBER.fullmatch(raw[c].strip()):
                raise ValueError(raw[c])
            x = float(raw[c])
        except (TypeError, ValueError):
            x = float("nan")
        if isinstance(raw[c], bool) or not 0 <= x <= 1:
            problems.append(f"{where}: tool_probabilities.{c}: {Y.brief(raw[c])} is not a probability; {allowed}")
            return None
        out[c] = x
    if abs(sum(out.values()) - 1) > 1e-3:
        problems.append(f"{where}: tool_probabilities: they add up to {sum(out.values()):.4f}; {allowed}")
        return None
    return out


def _follow_up(raw: Any, where: str, problems: list[str]) -> int | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", UNKNOWN)):
        return None
    value: Any = raw
    if isinstance(raw, str):
        value = int(raw.strip()) if F.PLAIN_WHOLE.fullmatch(raw.strip()) else None  # never '٦' or '1_0'
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FOLLOW_UP:
        problems.append(f"{where}: follow_up_months: {Y.brief(raw)} is not allowed; give whole months from 0 to "
                        f"{MAX_FOLLOW_UP}, or unknown")
        return None
    return value


# --- priors/registry.yaml -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """``priors/registry.yaml``: the registry files a fit uses and the registry's settings."""

    path: Path | None
    rows: tuple[Path, ...]
    counts: tuple[Path, ...]
    site_sigma: float  # half-normal scale of the sites' log-rate effects
    selection_tail: float  # a cause count beyond this prior predictive tail is warned about
    threshold: int  # cells below this are suppressed in exported counts
    digest: str  # SHA-256 of the settings file's bytes ("" without one)

    @property
    def used(self) -> bool:
        return bool(self.rows or self.counts)


#: Defaults when an evidence folder has no registry.yaml (a copy of priors/ made before issue 23): the same
#: values as the shipped file, whose reasoning they are.
DEFAULTS = {"site_sigma": 0.5, "selection_tail": 0.005, "threshold": 5}


def settings(directory: str | Path) -> Settings:
    """The registry settings of an evidence folder (its ``registry.yaml``; the defaults without one).

    Raises
    ------
    findings.InputError
        Naming ``registry.yaml``, the field, the value and what is allowed.
    """
    directory = Path(directory)
    path = directory / SETTINGS_FILE
    if not path.exists():
        return Settings(None, (), (), DEFAULTS["site_sigma"], DEFAULTS["selection_tail"], DEFAULTS["threshold"], "")
    try:
        data = Y.read_bytes(path)
        doc = Y.loads(Y.decode(data, path), path)
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        raise F.InputError(["give a mapping with rows, counts, site_effect, selection and export"], str(path))
    allowed = ("rows", "counts", "site_effect", "selection", "export")
    for key in doc:
        if key not in allowed:
            problems.append(f"{Y.brief(key)}: unknown key; allowed: {', '.join(allowed)}")

    def files(key: str) -> tuple[Path, ...]:
        value = doc.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(f"{key}: {Y.brief(value)} is not a list of file paths (relative to {directory})")
            return ()
        return tuple((directory / v) if not Path(v).is_absolute() else Path(v) for v in value)

    def number(block: str, key: str, low: float, high: float, whole: bool = False) -> float:
        b = doc.get(block)
        value = b.get(key) if isinstance(b, Mapping) else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
        if ok and whole and value != int(value):
            ok = False
        if not ok:
            problems.append(f"{block}.{key}: {Y.brief(value)} is not allowed; give a {'whole ' if whole else ''}number "
                            f"from {low} to {high}")
            return float(low)
        if not (isinstance(b, Mapping) and (b.get("reasoning") or b.get("ref"))):
            problems.append(f"{block}: give the reasoning (or a ref) for {key}")
        return float(value)

    rows, counts = files("rows"), files("counts")
    sigma = number("site_effect", "half_normal_sigma", 0.01, 5.0)
    tail = number("selection", "tail", 1e-6, 0.25)
    threshold = int(number("export", "threshold", 1, 1000, whole=True))
    if MIN_THRESHOLD > threshold >= 1:
        problems.append(f"export.threshold: {threshold} is not allowed; {THRESHOLD_WHY}")
    if problems:
        raise F.InputError(problems, str(path))
    return Settings(path, rows, counts, sigma, tail, threshold, hashlib.sha256(data).hexdigest())


def content_hash(s: Settings) -> str | None:
    """The hash a fit's cache key takes for the registry ``s`` names (its settings and every file's bytes), or
    None when it names none. Standard library only (the warm answer path may call it)."""
    if not s.used:
        return None
    h = hashlib.sha256(s.digest.encode())
    for kind, paths in (("rows", s.rows), ("counts", s.counts)):
        for p in paths:
            try:
                h.update(f"{kind}:{hashlib.sha256(Y.read_bytes(p)).hexdigest()}".encode())
            except Y.YAMLInputError as exc:
                raise F.InputError([f"{kind}: {exc.detail}"], str(s.path)) from None
    return h.hexdigest()


def key(directory: str | Path) -> str | None:
    """The registry part of the cache key of the fits of an evidence folder (None without a registry)."""
    return content_hash(settings(directory))
