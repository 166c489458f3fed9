"""What to do now (docs/design.md §3 guidance, §6 page 1): the actions of ``priors/actions.yaml`` whose
triggers hold for one patient's answer. The words and the triggers are data; this module only reads and
evaluates them; the grammar's shape is :class:`palsy.model.file_models.care_files.ActionsFile`, the names a
trigger uses are checked by :func:`palsy.model.crossref.actions_file`.

Trigger grammar (``when``): ``always``; ``{finding: NAME, in: [LEVEL, ...]}``; ``{finding: NAME,
unknown: true}``; for the LPs (``finding: csf``): ``count_below: N``, ``all_negative: true``,
``any_positive: true``, ``clean_positive: true`` (a positive LP that is not a traumatic tap while blasts
circulate), ``contaminated_positive: true`` (every positive LP is such a tap), ``atraumatic_after_positive:
true`` (an LP from a tap stated atraumatic follows the last positive one), ``without: METHOD`` (no LP read by
that method yet); ``{cause: CAUSE, above: P}`` / ``{cause: CAUSE, below: P}`` on the mean
posterior probability; ``{decision: [ACTION, ...]}``; ``{all: [...]}``, ``{any: [...]}``, ``{not: ...}``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import safe_yaml
from palsy.model import schema as SC

PAGE_ONE = 6  # actions page 1 shows at most
#: How urgent an action is: ``escalation`` (the leukaemia team today, tissue), ``workup`` (an investigation to
#: do now), ``care`` (everything else). A CDS card's indicator is critical, warning or info accordingly.
URGENCIES = ("escalation", "workup", "care")


@dataclasses.dataclass(frozen=True)
class Action:
    """One recommended action, its trigger and its sources."""

    id: str
    text: str
    detail: str
    when: Any
    priority: float
    refs: tuple[str, ...]
    reasoning: str
    urgency: str = "care"  # escalation | workup | care: what a card's indicator reads (critical, warning, info)
    sign: str = ""  # an escalating action's sign in a few words (the teaching handout's list)


def _levels(cond: Any, sc: SC.Schema) -> Any:
    """A validated trigger with its ``in`` levels as the schema's words (YAML's unquoted yes/no read back)."""
    if not isinstance(cond, dict):
        return cond
    out = {k: ([_levels(c, sc) for c in v] if k in ("all", "any") else _levels(v, sc) if k == "not" else v)
           for k, v in cond.items()}
    if "in" in out and "finding" in out:
        out["in"] = [sc.as_level(out["finding"], v) for v in out["in"]]
    return out


def validate(doc: Any, path: str | Path, causes: tuple[str, ...] | None, sc: SC.Schema,
             refs: dict[str, Any] | None) -> list[str]:
    """Every problem of an ``actions.yaml`` document: its shape (the file model) and what it names (the
    schema's findings and levels, the causes, the references; :func:`palsy.model.crossref.actions_file`)."""
    from palsy.model import crossref as X
    from palsy.model.file_models import base
    from palsy.model.file_models.care_files import ActionsFile

    found = base.check(ActionsFile, doc, str(path))
    return found + X.actions_file(doc, path, sc, causes, refs)


def load(directory: str | Path, causes: tuple[str, ...], schema: SC.Schema | None = None) -> tuple[Action, ...]:
    """Read and validate ``actions.yaml`` in ``directory`` for these ``causes``.

    The file is validated by its model and against the schema, the causes and ``references.yaml`` (when the
    folder has one) the first time these bytes are read with them; later reads trust the record of that
    (:mod:`palsy.model.validated`), so a warm answer does not import the validation library.

    Raises
    ------
    findings.InputError
        Naming the file, the action, the field, the value and what is allowed.
    """
    from palsy.model import validated

    folder = Path(directory)
    path = folder / "actions.yaml"
    sc = schema or SC.read(directory)
    try:
        blob = safe_yaml.read_bytes(path)
        doc = safe_yaml.loads(safe_yaml.decode(blob, path), path)
    except safe_yaml.YAMLInputError as exc:
        raise F.InputError([f"cannot read the actions: {exc.detail}"], str(path)) from None
    refs_blob = validated.file_bytes(folder / "references.yaml")
    record = validated.key("actions.yaml", blob, refs_blob, sc.hash, ",".join(causes))
    if not validated.seen(record):
        refs = safe_yaml.loads(safe_yaml.decode(refs_blob, folder / "references.yaml")) if refs_blob is not None else None
        problems = validate(doc, path, tuple(causes), sc, refs if isinstance(refs, dict) else None)
        if problems:
            raise F.InputError(problems, str(path))
        validated.remember(record)
    return tuple(Action(str(a["id"]), a["text"].strip(), str(a.get("detail") or "").strip(), _levels(a["when"], sc),
                        float(a["priority"]), tuple([a["ref"]] if isinstance(a["ref"], str) else a["ref"]),
                        str(a["reasoning"]), str(a.get("urgency", "care")), str(a.get("sign") or "").strip())
                 for a in doc["actions"])


def holds(cond: Any, patient: F.Patient, cause_means: dict[str, float], action: str | None) -> bool:
    """Whether a (validated) trigger holds for this patient, differential and decision."""
    if cond == "always":
        return True
    if "all" in cond:
        return all(holds(c, patient, cause_means, action) for c in cond["all"])
    if "any" in cond:
        return any(holds(c, patient, cause_means, action) for c in cond["any"])
    if "not" in cond:
        return not holds(cond["not"], patient, cause_means, action)
    if "finding" in cond:
        name = cond["finding"]
        if name == patient.schema.lp.name:
            return _lp_holds(cond, patient)
        value = patient.values.get(name)
        return value is None if cond.get("unknown") else value in cond["in"]
    if "cause" in cond:
        p = cause_means.get(cond["cause"])
        if p is None:  # a cause left out by --causes
            return False
        return p > cond["above"] if "above" in cond else p < cond["below"]
    if "decision" in cond:
        return action in cond["decision"]
    return False


def contaminated(lp: F.LP, patient: F.Patient) -> bool:
    """A traumatic tap while blasts circulate: its malignant cells may be the blood's."""
    finding, level = patient.schema.lp.contamination
    return lp.traumatic == "yes" and patient.level(finding) == level


def _lp_holds(cond: dict[str, Any], patient: F.Patient) -> bool:
    positives = [lp for lp in patient.csf if lp.positive]
    if "count_below" in cond:
        return len(patient.csf) < cond["count_below"]
    if cond.get("all_negative"):
        return bool(patient.csf) and not positives
    if cond.get("any_positive"):
        return bool(positives)
    if cond.get("clean_positive"):
        return any(not contaminated(lp, patient) for lp in positives)
    if cond.get("atraumatic_after_positive"):
        last = max((i for i, lp in enumerate(patient.csf) if lp.positive), default=None)
        return last is not None and any(lp.traumatic == "no" for lp in patient.csf[last + 1:])
    if cond.get("contaminated_positive"):
        return bool(positives) and all(contaminated(lp, patient) for lp in positives)
    if "without" in cond:
        return not any(lp.result(cond["without"]) is not None for lp in patient.csf)
    return not patient.csf


def applicable(actions: tuple[Action, ...], patient: F.Patient, cause_means: dict[str, float],
               action: str | None) -> list[Action]:
    """The actions whose triggers hold, by priority (page 1 shows the first :data:`PAGE_ONE`)."""
    return sorted((a for a in actions if holds(a.when, patient, cause_means, action)), key=lambda a: a.priority)
