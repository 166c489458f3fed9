"""What to do now (DESIGN §3 guidance, §6 page 1): the actions of ``priors/actions.yaml`` whose
triggers hold for one patient's answer. The words and the triggers are data; this module only reads,
validates and evaluates them.

Trigger grammar (``when``): ``always``; ``{finding: NAME, in: [LEVEL, ...]}``; ``{finding: NAME,
unknown: true}``; for the LPs (``finding: csf``): ``count_below: N``, ``all_negative: true``,
``any_positive: true``, ``clean_positive: true`` (a positive LP that is not a traumatic tap while blasts
circulate), ``contaminated_positive: true`` (every positive LP is such a tap), ``without: METHOD`` (no LP
read by that method yet); ``{cause: CAUSE, above: P}`` / ``{cause: CAUSE, below: P}`` on the mean
posterior probability; ``{decision: [ACTION, ...]}``; ``{all: [...]}``, ``{any: [...]}``, ``{not: ...}``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import safe_yaml
from palsy.model import schema as SC
from palsy.model.decision import ACTIONS

PAGE_ONE = 6  # actions page 1 shows at most
#: How urgent an action is: ``escalation`` (the leukaemia team today, tissue), ``workup`` (an investigation to
#: do now), ``care`` (everything else). A CDS card's indicator is critical, warning or info accordingly.
URGENCIES = ("escalation", "workup", "care")
#: What a trigger may ask of the LPs.
LP_CONDITIONS = ("count_below", "all_negative", "any_positive", "clean_positive", "contaminated_positive", "without",
                 "unknown")


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


def _check(cond: Any, where: str, causes: tuple[str, ...], problems: list[str], sc: SC.Schema) -> None:
    """Validate a trigger, appending each problem (naming ``where``) to ``problems``."""
    if cond == "always":
        return
    if not isinstance(cond, dict) or len(cond) == 0:
        problems.append(f"{where}: {cond!r} is not a trigger; allowed: always, finding, cause, decision, all, any, not")
        return
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        items = cond[key]
        if not isinstance(items, list) or not items:
            problems.append(f"{where}.{key}: give a non-empty list of triggers")
            return
        for i, c in enumerate(items):
            _check(c, f"{where}.{key}[{i + 1}]", causes, problems, sc)
    elif "not" in cond:
        _check(cond["not"], f"{where}.not", causes, problems, sc)
    elif "finding" in cond:
        name = cond["finding"]
        if name == sc.lp.name:
            keys = set(cond) - {"finding"}
            if len(keys) != 1 or not keys <= set(LP_CONDITIONS):
                problems.append(f"{where}: {name} takes one of {', '.join(LP_CONDITIONS)}")
            elif "without" in keys and cond["without"] not in sc.lp.methods:
                problems.append(f"{where}.without: {cond['without']!r}; allowed: {', '.join(sc.lp.methods)}")
        elif name not in sc.levels:
            problems.append(f"{where}.finding: {name!r} is not a finding; allowed: {', '.join(sc.levels)}, {sc.lp.name}")
        elif "in" in cond:
            levels = [sc.as_level(name, v) for v in (cond["in"] or [])]
            bad = [v for v in levels if v not in sc.allowed(name)]
            if bad or not levels:
                problems.append(f"{where}.in: {bad or levels!r} not levels of {name}; allowed: {', '.join(sc.allowed(name))}")
            cond["in"] = levels
        elif cond.get("unknown") is not True:
            problems.append(f"{where}: give `in: [levels]` or `unknown: true` for {name}")
    elif "cause" in cond:
        if cond["cause"] not in causes:
            problems.append(f"{where}.cause: {cond['cause']!r}; allowed: {', '.join(causes)}")
        bound = [k for k in ("above", "below") if k in cond]
        v = cond.get(bound[0]) if len(bound) == 1 else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            problems.append(f"{where}: give exactly one of above/below with a probability in (0, 1)")
    elif "decision" in cond:
        acts = cond["decision"]
        if not isinstance(acts, list) or not acts or any(a not in ACTIONS for a in acts):
            problems.append(f"{where}.decision: {acts!r}; give a list of {', '.join(ACTIONS)}")
    else:
        problems.append(f"{where}: {cond!r} is not a trigger; allowed: always, finding, cause, decision, all, any, not")


def load(directory: str | Path, causes: tuple[str, ...], schema: SC.Schema | None = None) -> tuple[Action, ...]:
    """Read and validate ``actions.yaml`` in ``directory`` for these ``causes``.

    Raises
    ------
    findings.InputError
        Naming the file, the action and the field.
    """
    path = Path(directory) / "actions.yaml"
    sc = schema or SC.read(directory)
    try:
        doc = safe_yaml.load(path)
    except safe_yaml.YAMLInputError as exc:
        raise F.InputError([f"cannot read the actions: {exc.detail}"], str(path)) from None
    items = doc.get("actions") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise F.InputError(["give a top-level list `actions:`"], str(path))
    problems: list[str] = []
    out, seen = [], set()
    for i, a in enumerate(items):
        aid, id_ok = safe_yaml.item_id(a, i)
        if not isinstance(a, dict):
            problems.append(f"action {aid}: must be a mapping")
            continue
        if not id_ok:
            problems.append(f"action {aid}: id: {safe_yaml.brief(a.get('id'))}: give the action's id (text, not blank)")
        if aid in seen:
            problems.append(f"action {aid}: duplicate id")
        seen.add(aid)
        text = a.get("text")
        if not isinstance(text, str) or not text.strip() or "\n" in text.strip():
            problems.append(f"action {aid}: text: give one line")
        pr = a.get("priority")
        if isinstance(pr, bool) or not isinstance(pr, (int, float)) or not math.isfinite(pr):
            problems.append(f"action {aid}: priority: {pr!r} must be a number")
        refs = a.get("ref") or []
        refs = [refs] if isinstance(refs, str) else refs
        if not refs or not isinstance(refs, list):
            problems.append(f"action {aid}: ref: give the source(s) of this advice")
        if not a.get("reasoning"):
            problems.append(f"action {aid}: reasoning: say why this action under this trigger")
        _check(a.get("when"), f"action {aid}: when", causes, problems, sc)
        urgency = a.get("urgency", "care")
        if urgency not in URGENCIES:
            problems.append(f"action {aid}: urgency: {urgency!r}; allowed: {', '.join(URGENCIES)}")
        unknown = sorted(set(a) - {"id", "text", "detail", "when", "priority", "ref", "reasoning", "urgency"})
        if unknown:
            problems.append(f"action {aid}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: id, text, detail, "
                            f"when, priority, ref, reasoning, urgency")
        out.append(Action(aid, str(text or "").strip(), str(a.get("detail") or "").strip(), a.get("when"),
                          float(pr) if isinstance(pr, (int, float)) else 0.0, tuple(map(str, refs)),
                          str(a.get("reasoning") or ""), str(urgency)))
    if problems:
        raise F.InputError(problems, str(path))
    return tuple(out)


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
    if cond.get("contaminated_positive"):
        return bool(positives) and all(contaminated(lp, patient) for lp in positives)
    if "without" in cond:
        return not any(lp.result(cond["without"]) is not None for lp in patient.csf)
    return not patient.csf


def applicable(actions: tuple[Action, ...], patient: F.Patient, cause_means: dict[str, float],
               action: str | None) -> list[Action]:
    """The actions whose triggers hold, by priority (page 1 shows the first :data:`PAGE_ONE`)."""
    return sorted((a for a in actions if holds(a.when, patient, cause_means, action)), key=lambda a: a.priority)
