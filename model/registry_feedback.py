"""The feedback loop (issue 23 item 5, docs/registry.md): what the CDS Hooks service answered, and a
clinician's later adjudication, as registry rows.

The service appends to its feedback log (``<state>/feedback.jsonl``, append-only) one line per card
outcome and, with :func:`answer_entry`, one line per answer it gave: the card's id, the patient's salted
hash (never the record's id), the findings as mapped from the record, P(cause) for every cause and the
model that answered. Later a clinician adjudicates: the adjudication form (:func:`template`, one line per
answer, with the month, P(infiltration), the leading cause and whether the card was accepted) gets a final
cause, how it was established and the follow-up on the line of the answer given at the time of the palsy.
:func:`rows` joins the two into registry rows (the findings and the tool's probabilities from the log, the
month of the answer as the period): what the tool said beside what the patient had, for the calibration of
the tool's own answers in ``palsy check`` and, once adjudicated, as registry data for the fit.
"""

from __future__ import annotations

import csv
import difflib
import io
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import registry as RG
from palsy.model import safe_json as SJ
from palsy.model import safe_yaml as Y
from palsy.model.schema import Schema

KIND = "answer"
#: The adjudication form's columns (those before ``final_cause`` are filled from the log; ``same_patient``
#: marks the lines of a patient answered more than once, of which one is adjudicated).
TEMPLATE_COLUMNS = ("card", "month", "patient", "p_infiltration", "leading_cause", "outcome", "same_patient",
                    "final_cause", "other_cause", "established_by", "follow_up_months")
#: "not JSON" lines named one by one before the rest are only counted (a file that is not the log at all).
MAX_NOT_JSON = 5
ADJUDICATION_FIELDS = ("card", "final_cause", "other_cause", "established_by", "follow_up_months")


def answer_entry(card: str, patient_hash: str, patient: F.Patient, answer: Mapping[str, Any], service: str,
                 now: float | None = None) -> dict[str, Any]:
    """The feedback-log line for an answer the service gave (the service appends it with the card's outcomes).

    Parameters
    ----------
    card : str
        The card's id (its ``uuid``).
    patient_hash : str
        The service's salted hash of the patient's id (never the id itself).
    patient : Patient
        The findings answered on.
    answer : mapping
        The answer's JSON (``Answer.to_dict()``): its ``causes`` and ``model``.
    service : str
        The CDS service's id.

    Of the model's registry the line keeps only whether one was used, its hash, the rows fitted and the
    base rate (:func:`palsy.model.registry.for_answer`): never site codes, file names or free text.
    """
    findings = {k: v for k, v in patient.to_dict().items() if k not in ("id", "description")}
    probs = {c["cause"]: float(c["probability"]["mean"]) for c in answer["causes"]}
    model = answer.get("model") or {}
    return {"kind": KIND, "received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "service": service,
            "card": card, "patient": patient_hash, "findings": findings, "probabilities": probs,
            "model": {**{k: model.get(k) for k in ("variant", "evidence_hash", "version")},
                      "registry": RG.for_answer(model.get("registry"))}}


def read_log(path: str | Path, schema: Schema, causes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The answers of a feedback log, each with its card's outcomes (``outcomes``: accepted, overridden, with
    the reason's code when one was given: :func:`outcome_text`).

    Raises
    ------
    findings.InputError
        Naming the log and the line of every problem.
    """
    try:
        text = Y.decode(Y.read_bytes(path, limit=256 * 1024 * 1024), path)
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    answers: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, list[str]] = {}
    problems = []
    not_json = 0
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            e = SJ.loads(line)  # strictly: a key twice, a 5000-digit number, deep nesting are a line's problem
        except SJ.JSONInputError as exc:
            not_json += 1
            if not_json <= MAX_NOT_JSON:
                problems.append(f"line {n}: {exc.detail}; the log has one JSON object per line")
            continue
        if not isinstance(e, dict) or not isinstance(e.get("card"), str):
            problems.append(f"line {n}: not a feedback entry (no card)")
            continue
        if e.get("kind") != KIND:
            if isinstance(e.get("outcome"), str):
                outcomes.setdefault(e["card"], []).append(outcome_text(e))
            continue
        probs = e.get("probabilities")
        if not isinstance(probs, dict) or set(probs) != set(causes):
            problems.append(f"line {n}: probabilities: {Y.brief(probs)}; an answer of a model with other causes "
                            f"than {', '.join(causes)} cannot be read with this evidence")
            continue
        try:
            F.parse_patient(e.get("findings") or {}, f"line {n}", schema=schema)
        except F.InputError as exc:
            problems += [f"line {n}: findings: {p}" for p in exc.problems]
            continue
        received = e.get("received")
        if not (isinstance(received, str) and RG.PERIOD_RE.match(received[:7])):
            problems.append(f"line {n}: received: {Y.brief(received)} is not a time the service wrote")
            continue
        answers[e["card"]] = e
    if not_json > MAX_NOT_JSON:
        problems.append(f"and {not_json - MAX_NOT_JSON} more lines that are not JSON: is this the service's feedback "
                        "log (<state>/feedback.jsonl)? A registry or an adjudication form is not")
    if problems:
        raise F.InputError(problems, str(path))
    out = []
    for card, e in answers.items():
        out.append({**e, "outcomes": outcomes.get(card, [])})
    return out


#: palsy's code system of the reasons a clinician may give for dismissing a card (the cards offer its codes).
OVERRIDE_SYSTEM = "urn:palsy:override-reason"


def outcome_text(entry: Mapping[str, Any]) -> str:
    """A card's outcome as the adjudication form shows it: ``accepted``, ``overridden``, or ``overridden:
    record-incomplete`` with the code of the reason the clinician chose (the card's ``overrideReasons``); a reason
    of the record system's own (CDS Hooks 2.0: a client may add reasons) with its system, so that it never reads
    as one of palsy's (``overridden: record-incomplete (http://ehr.example/reasons)``)."""
    reason = entry.get("overrideReason")
    code = reason.get("code") if isinstance(reason, dict) else None
    if not (isinstance(code, str) and code):
        return entry["outcome"]
    system = reason.get("system")
    foreign = f" ({system})" if isinstance(system, str) and system and system != OVERRIDE_SYSTEM else ""
    return f"{entry['outcome']}: {code}{foreign}"


def template(log: list[dict[str, Any]]) -> bytes:
    """The adjudication form as CSV: one line per answer (oldest first), the adjudication columns empty.

    A patient answered more than once (before and after the LP, say) has ``same_patient`` filled on each of
    its lines: the number of answers and their cards, to adjudicate one line only (the answer given at the
    time of the palsy), so that the patient is one registry row.
    """
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(TEMPLATE_COLUMNS)
    by_patient: dict[str, list[str]] = {}
    for e in sorted(log, key=lambda e: e["received"]):
        by_patient.setdefault(e["patient"], []).append(e["card"])
    for e in sorted(log, key=lambda e: e["received"]):
        probs = e["probabilities"]
        lead = max(probs, key=probs.get)
        cards = by_patient[e["patient"]]
        same = (f"answered {len(cards)} times ({', '.join(cards)}): adjudicate one of these lines" if len(cards) > 1
                else "")
        w.writerow([e["card"], e["received"][:7], e["patient"], f"{probs.get('infiltration', float('nan')):.3f}", lead,
                    ";".join(e["outcomes"]), same, "", "", "", ""])
    return buf.getvalue().encode("utf-8")


def _canonical(card: str) -> str:
    """A card id as the service writes it to its log: a UUID's lower-case form (a spreadsheet may upper-case it:
    an attacker's review, s16, found such a card said not to be in the log); other text as given, stripped."""
    try:
        return str(uuid.UUID(card.strip()))
    except ValueError:
        return card.strip()


def read_adjudication(path: str | Path, causes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The adjudication form filled in (CSV, or YAML ``{adjudications: [...]}``): card -> its fields (lines
    without a final cause are not adjudicated and left out).

    Raises
    ------
    findings.InputError
        Naming the file and the line of every problem (the rows' own fields are checked with the registry).
    """
    path = Path(path)
    try:
        data = Y.read_bytes(path)
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    if path.suffix.lower() == ".csv":
        text = Y.decode(data, path).lstrip("\ufeff")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            header = [h.strip() for h in reader.fieldnames or []]
            items = [(f"line {i + 2}", {(k or "").strip(): v for k, v in r.items()}) for i, r in enumerate(reader)]
        except csv.Error as exc:
            raise F.InputError([f"not CSV: {exc}"], str(path)) from None
        if not header:
            raise F.InputError(["an empty file; the first line names the columns (write the form with "
                                "`palsy registry from-feedback LOG --template FORM.csv`)"], str(path))
        if len(header) == 1 and ";" in header[0]:
            raise F.InputError([RG.semicolon_message(header[0])], str(path))
        bad = [f"line 1: {_unknown_column(h)}" for h in header if h not in TEMPLATE_COLUMNS]
        missing = [c for c in ("card", "final_cause") if c not in header]
        if missing:
            bad.append(f"line 1: the column{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
                       f"{'are' if len(missing) > 1 else 'is'} missing; the form's columns are {', '.join(TEMPLATE_COLUMNS)}")
        if bad:
            raise F.InputError(bad, str(path))
    else:
        doc = Y.loads(Y.decode(data, path), path)
        rows = doc.get("adjudications") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise F.InputError(["give {adjudications: [{card, final_cause, established_by, ...}]} or a CSV form"],
                               str(path))
        items = [(f"adjudication {i + 1}", r) for i, r in enumerate(rows)]
    out: dict[str, dict[str, Any]] = {}
    problems = []
    for where, r in items:
        if not isinstance(r, dict):
            problems.append(f"{where}: not a mapping")
            continue
        unknown = [k for k in r if k not in TEMPLATE_COLUMNS]
        if unknown:
            problems += [f"{where}: {_unknown_column(k)}" for k in unknown]
            continue
        r = {k: v for k, v in r.items() if k in ADJUDICATION_FIELDS and v not in (None, "")}
        if not r.get("final_cause"):
            continue
        card = r.get("card")
        if not isinstance(card, str) or not card.strip():
            problems.append(f"{where}: card: missing; give the card id of the answer adjudicated")
            continue
        card = _canonical(card)
        if card in out:
            problems.append(f"{where}: card {card!r} is adjudicated twice; adjudicate each answer once")
            continue
        out[card] = {**r, "card": card, "_where": where}
    if problems:
        raise F.InputError(problems, str(path))
    return out


def _unknown_column(name: Any) -> str:
    near = difflib.get_close_matches(str(name), TEMPLATE_COLUMNS, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return (f"{Y.brief(name)}: not a column of the adjudication form{hint}; its columns are "
            f"{', '.join(TEMPLATE_COLUMNS)}")


def rows(log: list[dict[str, Any]], adjudication: dict[str, dict[str, Any]], site: str, schema: Schema,
         causes: tuple[str, ...], source: str = "adjudication") -> RG.Registry:
    """Registry rows of the adjudicated answers, validated as a registry file's rows.

    ``source`` is the adjudication file's path, which every message names.

    Raises
    ------
    findings.InputError
        An adjudication of a card the log does not have, two adjudicated answers of one patient in one month
        (one patient would be two rows), or a row the registry refuses (named by its card).
    """
    by_card = {e["card"]: e for e in log}
    unknown = [f"{a['_where']}: card {c!r} is not in the feedback log" for c, a in adjudication.items() if c not in by_card]
    if unknown:
        raise F.InputError(unknown, source)
    seen: dict[tuple[str, str], str] = {}
    twice = []
    for card, a in adjudication.items():
        e = by_card[card]
        key = (e["patient"], e["received"][:7])
        if key in seen:
            twice.append(f"{a['_where']} (card {card}) and {adjudication[seen[key]]['_where']} (card {seen[key]}) "
                         f"adjudicate answers for one patient ({e['patient']}) in {key[1]}: the patient would be two "
                         "registry rows; clear the adjudication of one line (keep the answer given at the time of the "
                         "palsy)")
        else:
            seen[key] = card
    if twice:
        raise F.InputError(twice, source)
    raw = []
    for card, a in adjudication.items():
        e = by_card[card]
        row = {k: v for k, v in e["findings"].items() if v not in ("unknown", [], None)}
        row.update({k: v for k, v in a.items() if k in ADJUDICATION_FIELDS and k != "card"})
        row.update(site=site, period=e["received"][:7], tool_probabilities=e["probabilities"])
        raw.append((f"card {card} ({a['_where']})", row))
    raw.sort(key=lambda x: x[1]["period"])
    return RG.from_mappings(raw, schema, causes, source=source)


def registry_bytes(reg: RG.Registry) -> bytes:
    """A registry as a YAML registry file."""
    import yaml

    doc = {"registry_version": RG.FORMAT_VERSION, "rows": reg.to_rows()}
    head = ("# Registry rows made by `palsy registry from-feedback` from the service's feedback log and the\n"
            "# clinicians' adjudications (docs/registry.md). De-identified by construction.\n")
    return (head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)).encode("utf-8")
