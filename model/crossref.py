"""The rules between the files of ``priors/``: what a value in one file means in another.

The file models (:mod:`palsy.model.file_models`) check what each file says on its own; the functions here
check that the names one file uses exist in the file that declares them:

- every free node parameter of every cause has evidence (:func:`node_coverage`);
- ``model.yaml``: a label for each cause, the forms' priors, the selection's nodes, hallmarks and scope
  notes in the schema (:func:`model_file`);
- ``decision.yaml``: a harm for each next test of the schema, management of causes of ``model.yaml``
  (:func:`decision_file`);
- ``actions.yaml``: the findings, levels, LP conditions and causes its triggers name, and its references
  (:func:`actions_file`);
- ``validation.yaml``: causes, references, findings that parse as a patient, partly known levels of the
  schema, cases kept out of the fit (:func:`validation_file`);
- ``teaching_cases.yaml``: the cases it takes from ``cases.yaml`` and ``validation.yaml`` exist, its own
  findings parse, causes and references exist (:func:`teaching_file`);
- ``fhir_map.yaml``: the findings and levels its codes map to are the schema's (:func:`fhir_map_file`);
- every reference key cited anywhere is a key of ``references.yaml`` (:func:`cited`).

Every problem is one line naming the file, the entry, the field, the value and what is allowed
(:func:`problem`). :func:`check_folder` runs every check on every file (``palsy evidence``);
:func:`companions` the checks of the files the fit does not read, for :func:`palsy.model.evidence.load`.
Standard library and palsy only at import (the file models, and so pydantic, are imported when used).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from palsy.model import schema as SC
from palsy.model.safe_yaml import brief

#: Every file of an evidence folder, in the order they are checked. The first six are what the fit reads.
FIT_FILES = ("schema.yaml", "references.yaml", "cases.yaml", "cohorts.yaml", "rates.yaml", "model.yaml")
#: The files read when a patient is answered, taught or read from a record (not part of the fit).
COMPANION_FILES = ("decision.yaml", "actions.yaml", "validation.yaml", "teaching_cases.yaml", "fhir_map.yaml")
#: Files other modules validate with their own loaders, checked by ``palsy evidence`` through them:
#: ``registry.yaml`` (issue 23) by :func:`palsy.model.registry.settings`.
OWN_LOADERS = ("registry.yaml",)
#: Companion files a folder must have (``palsy evidence``): an answer reads them.
REQUIRED_COMPANIONS = ("decision.yaml", "actions.yaml")
#: A teaching case's cause may be left open (a trap with no single answer).
OPEN_CAUSE = "unknown"


# --- messages ----------------------------------------------------------------------------------------

def did_you_mean(value: Any, allowed: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` when ``value`` is text close to one of ``allowed``, else ``""``."""
    if not isinstance(value, str):
        return ""
    near = difflib.get_close_matches(value, [str(a) for a in allowed], n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def not_allowed(value: Any, allowed: Iterable[Any], what: str = "is not allowed") -> str:
    """``'x' is not allowed (did you mean 'y'?); allowed: a, b`` (the value shown briefly)."""
    allowed = [str(a) for a in allowed]
    return f"{brief(value)} {what}{did_you_mean(value, allowed)}; allowed: {', '.join(allowed) or 'none'}"


def problem(file: str | Path, entry: Any, field: str, text: str) -> str:
    """One line: ``FILE: entry 'E': field 'F': TEXT``."""
    return f"{file}: entry {brief(entry)}: field {brief(field)}: {text}"


def cited(file: str | Path, entry: Any, field: str, keys: Iterable[str], refs: Mapping[str, Any] | set[str]) -> list[str]:
    """A problem for each key cited that is not a key of ``references.yaml``."""
    if refs is None:
        return []
    return [problem(file, entry, field, f"{brief(k)} is not a key of references.yaml{did_you_mean(k, refs)}")
            for k in keys if k not in refs]


# --- model.yaml ----------------------------------------------------------------------------------------

def model_file(doc: Mapping[str, Any], file: str | Path, sc: SC.Schema) -> list[str]:
    """The rules of ``model.yaml`` against the schema and within the causes and forms it declares (``doc``
    has the shape of :class:`palsy.model.file_models.evidence_files.ModelFile`)."""
    from palsy.model import structure as ST
    from palsy.model.variants import INFILTRATION

    st = ST.of(sc)
    out = []
    causes, forms = list(doc["causes"]), list(doc["forms"])
    if INFILTRATION not in causes:
        out.append(problem(file, "causes", "causes", f"{brief(causes)}: give a list of distinct cause names including "
                                                     f"{INFILTRATION!r} and at least one other"))
    labels = doc["cause_labels"]
    for c in causes:
        if c not in labels:
            out.append(problem(file, "cause_labels", f"cause_labels.{c}", "missing: give {label, short} for each cause "
                                                                          "of `causes`"))
    for c in labels:
        if c not in causes:
            out.append(problem(file, "cause_labels", f"cause_labels.{c}", not_allowed(c, causes, "is not a cause")))
    if doc["unknown_csf_method"] not in sc.lp.methods:
        out.append(problem(file, "unknown_csf_method", "unknown_csf_method",
                           not_allowed(doc["unknown_csf_method"], sc.lp.methods)))
    fp = doc["form_prior"]
    lineages = st.levels_of("lineage") if "lineage" in sc.levels else ()
    flat = all(not isinstance(v, Mapping) for v in fp.values())
    cells = {"": fp} if flat else fp
    if not flat and set(fp) != set(lineages):
        out.append(problem(file, "form_prior", "form_prior", f"{brief(sorted(fp))}: give a mapping for each lineage "
                                                             f"{', '.join(lineages)} (or one mapping for all)"))
    for lin, m in cells.items():
        if set(m) != set(forms):
            out.append(problem(file, "form_prior", f"form_prior{'.' + lin if lin else ''}",
                               f"{brief(sorted(m))}: give a positive concentration for each form: {', '.join(forms)}"))
    for j, nd in enumerate(doc["synthesis"]["selection"]["nodes"], start=1):
        fname, level = nd["finding"], tuple(nd["level"]) if not isinstance(nd["level"], str) else (nd["level"],)
        where = f"synthesis.selection.nodes[{j}]"
        if fname not in st.tree_findings:
            out.append(problem(file, where, "finding", not_allowed(fname, st.tree_findings, "is not a tree finding")))
        elif st.find_node(fname, level, st.items[fname]) is None:
            out.append(problem(file, where, "level", f"{brief(list(level))}: give the level(s) of a node of the {fname} "
                                                     f"tree over all its levels ({', '.join(st.items[fname])})"))
    for cause, marks in doc["hallmarks"].items():
        if cause not in causes:
            out.append(problem(file, f"hallmarks.{cause}", "hallmarks", not_allowed(cause, causes, "is not a cause")))
        for j, mk in enumerate(marks or [], start=1):
            fname, value = mk["finding"], sc.as_level(mk["finding"], mk["value"])
            if fname not in sc.levels:
                out.append(problem(file, f"hallmarks.{cause}[{j}]", "finding",
                                   not_allowed(fname, sc.categorical, "is not a categorical finding")))
            elif value not in sc.levels[fname]:
                out.append(problem(file, f"hallmarks.{cause}[{j}]", "value",
                                   not_allowed(value, sc.levels[fname], f"is not a level of {fname}")))
    notes = {sc.scope_note(f, lv) for f in sc.categorical for lv in sc.allowed(f)} - {None}
    for key in sorted(notes - set(doc["scope"])):
        out.append(problem(file, "scope", f"scope.{key}", "missing: schema.yaml names this scope note; give its words"))
    return out


# --- the fit's node coverage ------------------------------------------------------------------------------

def node_coverage(ev: Any) -> list[str]:
    """The free node parameters no entry informs, per variant (``'subtype: bell | onset: progressive'``).

    Every free node parameter of every cause must be informed by counts or an expert judgment (docs/design.md
    §3): every (cause or form, tree node), every infiltration form's CSF detectability and every node the CSF
    model shares across causes. A shared node's entry informs every component; under the independent variant
    a node that only form-specific entries inform is informed by them all."""
    from palsy.model import design as D

    missing = []
    st = ev.structure
    for name in ("subtype", "independent"):
        variant = ev.variant(name)
        informed = {target for e in ev.entries for target in D.judgment_targets(e, st, variant)
                    if not (e.kind == "expert_judgment" and e.form is not None and not variant.is_mixture)}
        informed |= {(k, j) for k in variant.infiltration_components for (k2, j) in list(informed) if k2 is None}
        if not variant.is_mixture:
            forms = {(e.item, e.level, e.of, e.lp_node) for e in ev.entries if e.form is not None}
            informed |= {(k, j) for k in variant.infiltration_components for j, n in enumerate(st.nodes)
                         if any((n.key is not None and f[3] == n.key)
                                or (n.item == f[0] and set(n.success) == set(f[1]) and set(n.of) == set(f[2]))
                                for f in forms)}
        names = st.free_names(variant.components, variant.infiltration_components)
        free = st.free_parameters(variant.components, variant.infiltration_components)
        missing += [f"{name}: {names[i]}" for i, f in enumerate(free) if f not in informed]
    return missing


def coverage_problems(ev: Any, file: str | Path) -> list[str]:
    """:func:`node_coverage` as problems of ``cohorts.yaml`` (one line per node without evidence)."""
    return [problem(file, node.split(": ", 1)[1], "-", f"no entry informs this node ({node.split(':')[0]} variant); "
                                                       f"give counts or an expert judgment for it")
            for node in node_coverage(ev)]


# --- reading what can be read ----------------------------------------------------------------------------
# The rules of meaning run on the document as written, whatever its shape: the file model reports a wrong
# shape; these functions check the names they can read and skip what they cannot.

def _map(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _name(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def _keys(value: Any) -> tuple[str, ...]:
    """Reference keys as written (one key or a list); what is not text is the file model's problem."""
    if isinstance(value, str):
        return (value,)
    return tuple(k for k in value if isinstance(k, str)) if isinstance(value, list) else ()


def _entries(doc: Any, key: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The mappings of the list ``doc[key]``, each with its label (its id, or ``#n``)."""
    return [(Y.item_id(item, i)[0], item) for i, item in enumerate(_list(_map(doc).get(key))) if isinstance(item, Mapping)]


# --- decision.yaml -----------------------------------------------------------------------------------------

def decision_file(doc: Any, file: str | Path, sc: SC.Schema, causes: Iterable[str] | None) -> list[str]:
    """A harm for each next test of the schema (and no other); management only of causes of ``model.yaml``."""
    out = []
    tests, given = list(sc.next_tests), _map(_map(doc).get("tests"))
    for t in tests:
        if t not in given:
            out.append(problem(file, "tests", f"tests.{t}", f"missing: give a harm for each test of schema.yaml's "
                                                            f"next_tests: {', '.join(tests)}"))
    for t in given:
        if t not in tests:
            out.append(problem(file, "tests", f"tests.{t}", not_allowed(t, tests, "is not a next test of schema.yaml")))
    floor = _map(_map(doc).get("testing_floor")).get("value")
    benefit = _map(_map(doc).get("benefit_treat_infiltration")).get("value")
    harm = _map(_map(doc).get("harm_treat_without_infiltration")).get("value")
    if all(isinstance(x, int | float) and not isinstance(x, bool) and x > 0 for x in (floor, benefit, harm)):
        treatment = harm / (harm + benefit)
        if floor >= treatment:
            out.append(problem(file, "testing_floor", "value", f"{floor} is not below the treatment threshold "
                                                               f"{treatment:.3g} (harm / (harm + benefit))"))
    if causes is not None:
        causes = list(causes)
        for c in _map(_map(doc).get("management")):
            if c not in causes:
                out.append(problem(file, "management", f"management.{c}", not_allowed(c, causes, "is not a cause")))
    return out


# --- actions.yaml ------------------------------------------------------------------------------------------

def trigger(cond: Any, file: str | Path, entry: str, where: str, sc: SC.Schema, causes: Iterable[str] | None) -> list[str]:
    """The names a trigger (of the grammar of :mod:`palsy.model.guidance`) uses, against the schema and causes."""
    from palsy.model.file_models.care_files import LP_CONDITIONS

    out: list[str] = []
    if not isinstance(cond, Mapping):
        return out
    for key in ("all", "any"):
        for i, c in enumerate(_list(cond.get(key)), start=1):
            out += trigger(c, file, entry, f"{where}.{key}[{i}]", sc, causes)
    if "not" in cond:
        out += trigger(cond["not"], file, entry, f"{where}.not", sc, causes)
    name = _name(cond.get("finding"))
    if name is not None:
        lp_asks = [k for k in LP_CONDITIONS if k in cond]
        if name == sc.lp.name:
            if "in" in cond:
                out.append(problem(file, entry, f"{where}.in", f"{sc.lp.name} is a list of LPs: give one of "
                                                               f"{', '.join(LP_CONDITIONS)}, or unknown: true"))
            method = _name(cond.get("without"))
            if method is not None and method not in sc.lp.methods:
                out.append(problem(file, entry, f"{where}.without", not_allowed(method, sc.lp.methods)))
        elif name not in sc.levels:
            out.append(problem(file, entry, f"{where}.finding", not_allowed(name, sc.findings, "is not a finding")))
        elif lp_asks:
            out.append(problem(file, entry, f"{where}.{lp_asks[0]}", f"only {sc.lp.name} takes {lp_asks[0]}; give "
                                                                     f"`in: [levels]` or `unknown: true` for {name}"))
        else:
            for v in _list(cond.get("in")):
                level = sc.as_level(name, v)
                if isinstance(level, str) and level not in sc.allowed(name):
                    out.append(problem(file, entry, f"{where}.in", not_allowed(level, sc.allowed(name),
                                                                               f"is not a level of {name}")))
    cause = _name(cond.get("cause"))
    if cause is not None and causes is not None and cause not in causes:
        out.append(problem(file, entry, f"{where}.cause", not_allowed(cause, causes, "is not a cause")))
    return out


def actions_file(doc: Any, file: str | Path, sc: SC.Schema, causes: Iterable[str] | None,
                 refs: Mapping[str, Any] | None) -> list[str]:
    """Each action's trigger names findings, levels and causes that exist, and cites references that exist;
    ids are distinct."""
    causes = list(causes) if causes is not None else None
    out, seen = [], set()
    for aid, a in _entries(doc, "actions"):
        if aid in seen:
            out.append(problem(file, aid, "id", "duplicate action id; give each action its own"))
        seen.add(aid)
        out += trigger(a.get("when"), file, aid, "when", sc, causes)
        out += cited(file, aid, "ref", _keys(a.get("ref")), refs)
    return out


# --- validation.yaml ---------------------------------------------------------------------------------------

def _patient(findings: Any, file: str | Path, entry: str, sc: SC.Schema, field: str = "findings") -> list[str]:
    """The findings parse as a patient's (:func:`palsy.model.findings.parse_patient`)."""
    if not isinstance(findings, Mapping):
        return []
    try:
        F.parse_patient(dict(findings), str(file), schema=sc)
    except F.InputError as exc:
        return [problem(file, entry, field, p) for p in exc.problems]
    return []


def _partial(case: Mapping[str, Any], file: str | Path, entry: str, sc: SC.Schema) -> list[str]:
    out = []
    for name, level in _map(case.get("partial")).items():
        if name not in sc.partial:
            out.append(problem(file, entry, f"partial.{name}", not_allowed(name, sorted(sc.partial),
                                                                           "has no partly known levels")))
        elif isinstance(level, str) and level not in sc.partial[name]:
            out.append(problem(file, entry, f"partial.{name}", not_allowed(level, sc.partial[name],
                                                                           f"is not a partly known level of {name}")))
        elif _map(case.get("findings")).get(name) not in (None, SC.UNKNOWN):
            out.append(problem(file, entry, f"partial.{name}", f"{name} is also given in findings: give one of them"))
    return out


def _where_keys(case: Mapping[str, Any], file: str | Path, entry: str, allowed: list[str]) -> list[str]:
    return [problem(file, entry, f"where.{k}", not_allowed(k, allowed, "is not a finding"))
            for k in _map(case.get("where")) if k not in allowed]


def validation_file(doc: Any, file: str | Path, sc: SC.Schema, causes: Iterable[str] | None,
                    refs: Mapping[str, Any] | None, library: Iterable[str] = (), fit_refs: Iterable[str] = ()) -> list[str]:
    """Causes and references exist; findings parse as a patient's; partly known levels are the schema's;
    ``where`` names findings; ids are distinct; the scored cases are kept out of the fit (not a case of
    ``cases.yaml``, and no reference of theirs informs the fit)."""
    causes = list(causes) if causes is not None else None
    library, fit_refs = set(library), set(fit_refs)
    where_allowed = [*sc.findings, *(f"partial.{n}" for n in sc.partial)]
    out, seen = [], set()
    for group in ("cases", "candidates"):
        for cid, c in _entries(doc, group):
            if cid in seen:
                out.append(problem(file, cid, "id", "duplicate id in validation.yaml"))
            seen.add(cid)
            cause = _name(c.get("cause"))
            if causes is not None and cause is not None and cause not in causes:
                out.append(problem(file, cid, "cause", not_allowed(cause, causes, "is not a cause")))
            out += cited(file, cid, "ref", _keys(c.get("ref")), refs)
            out += _patient(c.get("findings") or {}, file, cid, sc)
            out += _partial(c, file, cid, sc)
            out += _where_keys(c, file, cid, where_allowed)
            if group == "cases":
                if cid in library:
                    out.append(problem(file, cid, "id", "is a case of cases.yaml: a validation case is kept out of the fit"))
                for k in _keys(c.get("ref")):
                    if k in fit_refs:
                        out.append(problem(file, cid, "ref", f"{k!r} informs the fit (cases.yaml, cohorts.yaml or "
                                                             f"rates.yaml): a validation case is kept out of it"))
    return out


def validation_ids(doc: Any) -> set[str]:
    """The ids of ``validation.yaml``'s scored cases."""
    return {cid for cid, _ in _entries(doc, "cases")}


# --- teaching_cases.yaml -----------------------------------------------------------------------------------

def teaching_file(doc: Any, file: str | Path, sc: SC.Schema, causes: Iterable[str] | None,
                  refs: Mapping[str, Any] | None, library: Iterable[str] = (),
                  validation: Iterable[str] | None = None) -> list[str]:
    """The typical patient and the teaching cases' findings parse; the cases taken from ``cases.yaml`` and
    ``validation.yaml`` exist there; causes and references exist; ids are distinct."""
    causes = list(causes) if causes is not None else None
    library = set(library)
    typ = _map(_map(doc).get("typical"))
    out = _patient(typ.get("findings"), file, "typical", sc)
    if "negative_lp" in typ:
        _, lp_problems = F.parse_lp(typ["negative_lp"], "negative_lp", sc)
        out += [problem(file, "typical", "negative_lp", p) for p in lp_problems]
    for i, g in enumerate(_list(_map(doc).get("glossary")), start=1):
        if isinstance(g, Mapping) and g.get("ref") is not None:
            out += cited(file, f"glossary[{i}]", "ref", _keys(g.get("ref")), refs)
    seen = set()
    for cid, c in _entries(doc, "cases"):
        source = c.get("source")
        if cid in seen:
            out.append(problem(file, cid, "id", "duplicate case id"))
        seen.add(cid)
        if source == "cases.yaml" and cid not in library:
            out.append(problem(file, cid, "id", f"{brief(cid)} is not a case of cases.yaml{did_you_mean(cid, library)}"))
        elif source == "validation.yaml" and validation is not None and cid not in validation:
            out.append(problem(file, cid, "id", f"{brief(cid)} is not a case of validation.yaml's cases"
                               + did_you_mean(cid, validation)))
        elif source == "teaching":
            out += _patient(c.get("findings") or {}, file, cid, sc)
        cause = _name(c.get("cause"))
        if causes is not None and cause is not None and cause not in (*causes, OPEN_CAUSE):
            out.append(problem(file, cid, "cause", not_allowed(cause, [*causes, OPEN_CAUSE], "is not a cause")))
        based_on = _name(c.get("based_on"))
        if based_on is not None and based_on != "typical":
            out.append(problem(file, cid, "based_on", not_allowed(based_on, ["typical"])))
        out += cited(file, cid, "ref", _keys(c.get("ref")), refs)
        out += cited(file, cid, "refs", _keys(c.get("refs")), refs)
        out += _where_keys(c, file, cid, list(sc.findings))
    return out


# --- fhir_map.yaml -----------------------------------------------------------------------------------------

def _fhir_row(i: int, row: Any) -> str:
    """A code row named by its position and its code (``codes[4] (http://snomed.info/sct 277571004)``)."""
    row = _map(row)
    return f"codes[{i}] ({row.get('system')} {row.get('code')})"


def _fhir_entry_of(doc: Any) -> Any:
    """Name an error's entry in ``fhir_map.yaml``: a code row by :func:`_fhir_row`, any other block by its key."""
    def entry_of(loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        codes = _list(_map(doc).get("codes"))
        if len(loc) >= 2 and loc[0] == "codes" and isinstance(loc[1], int) and loc[1] < len(codes):
            return _fhir_row(loc[1] + 1, codes[loc[1]]), loc[2:]
        return (str(loc[0]), loc) if loc else ("-", ())
    return entry_of


def fhir_map_file(doc: Any, file: str | Path, sc: SC.Schema) -> list[str]:
    """The findings and levels the codes map to are the schema's: a finding or exposure row's finding and
    levels, an imaging row's level of the imaging finding, a result row's LP result; an exposure row's window
    is one of the table's windows, with its unit (days or months)."""
    from palsy.model import fhir

    out = []
    imaging = [n for n in sc.categorical if sc.by_name[n].role == "imaging"]
    imaging_levels = [lv for n in imaging for lv in sc.levels[n]]
    windows = _map(_map(doc).get("windows"))
    timed = [w for w, v in windows.items() if _map(v).get("unit") in fhir.WINDOW_UNITS]
    # a unit that is not allowed is the file model's problem (named at the window); a missing one is here
    unitless = {w for w, v in windows.items() if _map(v).get("unit") is None}
    for i, row in enumerate(_list(_map(doc).get("codes")), start=1):
        if not isinstance(row, Mapping):
            continue
        entry = _fhir_row(i, row)
        role = row.get("role")
        if role in fhir.EXPOSURE_ROLES:
            window = _name(row.get("window"))
            if window is not None and (window in unitless or window not in windows):
                why = (f"is a window without a unit; give windows.{window}.unit ({', '.join(fhir.WINDOW_UNITS)})"
                       if window in windows else "is not a window of this table (with a unit)")
                out.append(problem(file, entry, "window", not_allowed(window, timed, why)))
        if role == "finding" or role in fhir.EXPOSURE_ROLES:
            name = _name(row.get("finding"))
            if name is None:
                continue
            if name not in sc.levels:
                out.append(problem(file, entry, "finding", not_allowed(name, sc.categorical, "is not a finding")))
                continue
            for key in ("level", "absent_level"):
                lv = _name(row.get(key))
                if lv is not None and lv not in sc.allowed(name):
                    out.append(problem(file, entry, key, not_allowed(lv, sc.allowed(name), f"is not a level of {name}")))
        elif role == "imaging":
            lv = _name(row.get("level"))
            if lv is not None and lv not in imaging_levels:
                out.append(problem(file, entry, "level", not_allowed(lv, imaging_levels, "is not an imaging level")))
        elif role == "result":
            result = _name(row.get("result"))
            # normal and abnormal: interpretation flags, read only against a value (model/fhir.py, _reading)
            allowed = (*sc.lp.results, "normal", "abnormal")
            if result is not None and result not in allowed:
                out.append(problem(file, entry, "result", not_allowed(result, allowed)))
    return out


# --- every file of a folder --------------------------------------------------------------------------------

@dataclasses.dataclass
class Context:
    """What the fit's files declare that the companion files are checked against."""

    schema: SC.Schema
    causes: tuple[str, ...] | None
    references: Mapping[str, Any] | None
    library: frozenset[str] = frozenset()  # ids and aliases of cases.yaml
    fit_refs: frozenset[str] = frozenset()  # reference keys that inform the fit


def _models() -> dict[str, Any]:
    from palsy.model.file_models import care_files as C

    return {"decision.yaml": C.DecisionFile, "actions.yaml": C.ActionsFile, "validation.yaml": C.ValidationFile,
            "teaching_cases.yaml": C.TeachingFile, "fhir_map.yaml": C.FhirMapFile}


def companion(name: str, doc: Any, path: str | Path, ctx: Context, docs: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem of one companion file: its shape (the file model), then what its names mean."""
    from palsy.model.file_models import base

    found = base.check(_models()[name], doc, str(path), _fhir_entry_of(doc) if name == "fhir_map.yaml" else None)
    if name == "decision.yaml":
        return found + decision_file(doc, path, ctx.schema, ctx.causes)
    if name == "actions.yaml":
        return found + actions_file(doc, path, ctx.schema, ctx.causes, ctx.references)
    if name == "validation.yaml":
        return found + validation_file(doc, path, ctx.schema, ctx.causes, ctx.references, ctx.library, ctx.fit_refs)
    if name == "teaching_cases.yaml":
        vdoc = (docs or {}).get("validation.yaml")
        ids = validation_ids(vdoc) if vdoc is not None else None
        return found + teaching_file(doc, path, ctx.schema, ctx.causes, ctx.references, ctx.library, ids)
    return found + fhir_map_file(doc, path, ctx.schema)


def read(directory: Path, names: Iterable[str], required: Iterable[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """The documents of the files ``names`` that exist in ``directory`` (safe YAML) and the problems reading
    them; a file of ``required`` that is missing is a problem."""
    docs, out = {}, []
    for name in names:
        path = directory / name
        if not os.path.lexists(path):
            if name in required:
                out.append(f"{path}: file missing")
            continue
        try:
            docs[name] = Y.load(path)
        except Y.YAMLInputError as exc:
            out.append(str(exc))
    return docs, out


def companions(directory: str | Path, ctx: Context, required: Iterable[str] = ()) -> list[str]:
    """Every problem of the companion files present in ``directory`` (and of ``required`` ones missing)."""
    directory = Path(directory)
    docs, out = read(directory, COMPANION_FILES, required)
    for name in COMPANION_FILES:
        if name in docs:
            out += companion(name, docs[name], directory / name, ctx, docs)
    return out


def context_of(ev: Any, rates_doc: Any = None) -> Context:
    """The context of an :class:`palsy.model.evidence.Evidence` (possibly of files with problems: the causes
    are unknown, and not checked, when ``model.yaml`` cannot say them)."""
    library = {c.id for c in ev.cases} | {a for c in ev.cases for a in c.also_known_as}
    fit_refs = {r for e in ev.entries for r in e.refs} | {c.ref for c in ev.cases}
    fit_refs |= rate_refs(ev.rates.doc if ev.rates is not None else rates_doc)
    return Context(ev.schema, tuple(ev.settings.get("causes") or ()) or None, ev.references, frozenset(library),
                   frozenset(fit_refs))


def rate_refs(doc: Any) -> set[str]:
    """Every reference key ``rates.yaml`` cites, anywhere."""
    out: set[str] = set()
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            if k == "ref" and v:
                out |= set(_keys(v)) if isinstance(v, (str, list)) else set()
            else:
                out |= rate_refs(v)
    elif isinstance(doc, list):
        for v in doc:
            out |= rate_refs(v)
    return out


def check_folder(directory: str | Path) -> tuple[Any, list[str]]:
    """Every file of an evidence folder checked against the others: the fit's files
    (:func:`palsy.model.evidence.load`, node coverage included when ``model.yaml`` requires it), every
    companion file present, and the companions an answer needs (:data:`REQUIRED_COMPANIONS`) present.

    Returns
    -------
    (Evidence or None, list of str)
        The evidence when the fit's files load, and every problem (empty when the folder is valid).
    """
    from palsy.model import evidence as E

    directory = Path(directory)
    missing = [f"{directory / n}: file missing; an answer reads it" for n in REQUIRED_COMPANIONS
               if directory.is_dir() and not os.path.lexists(directory / n)]
    own = _own_loaders(directory)
    try:
        ev = E.load(directory)
    except E.EvidenceError as exc:
        return None, list(exc.problems) + own + missing
    return ev, own + missing


def _own_loaders(directory: Path) -> list[str]:
    """The problems of the files of :data:`OWN_LOADERS` present, as their loaders name them."""
    out = []
    if (directory / "registry.yaml").exists():
        from palsy.model import registry

        try:
            registry.settings(directory)
        except F.InputError as exc:
            out += [f"{exc.source}: {p}" for p in exc.problems]
    return out


__all__ = ["COMPANION_FILES", "OWN_LOADERS", "Context", "FIT_FILES", "actions_file", "check_folder", "cited", "companion", "companions",
           "context_of", "coverage_problems", "decision_file", "did_you_mean", "fhir_map_file", "model_file",
           "node_coverage", "not_allowed", "problem", "rate_refs", "teaching_file", "trigger", "validation_file"]
