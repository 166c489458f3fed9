"""Load and validate ``priors/`` (DESIGN §3): ``load(dir) -> Evidence``.

Every problem in every file is collected into one :class:`EvidenceError` naming the file, the entry
and the field. Nothing numeric about the clinical world is defined here: it is all read from YAML.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import os
from pathlib import Path
from typing import Any

from palsy.model import lp as LP
from palsy.model import paths, variants
from palsy.model import rates as R
from palsy.model import safe_yaml as Y
from palsy.model import schema as SC
from palsy.model import structure as ST
from palsy.model.rates import RateSpec
from palsy.model.safe_yaml import brief
from palsy.model.variants import Variant

FILES = ("schema.yaml", "references.yaml", "cases.yaml", "cohorts.yaml", "rates.yaml", "model.yaml")
PHASES = ("after_diagnosis", "at_diagnosis", "unknown")
OTHER_PROOF = ("biopsy", "marrow", "blood", "autopsy", "pet", "emg", "response_to_treatment", "clinical", "ct")
CASE_KEYS = {"id", "also_known_as", "ref", "phase", "form", "findings", "proven_by", "where", "confidence", "notes"}
ENTRY_KEYS = {
    "id", "kind", "ref", "finding", "cause", "form", "method", "given", "level", "of", "x", "n", "population",
    "where", "weight", "weight_reason", "confidence", "tabulates_cases", "beta", "reasoning", "notes",
    "lp_node", "context",
}
#: An LP rate entry's population may have had contamination: traumatic taps with circulating blasts.
CONTAMINATED = {"traumatic": "yes", "circulating_blasts": "present"}


class EvidenceError(ValueError):
    """Invalid evidence: every problem, each naming file, entry and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid evidence in priors/:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclasses.dataclass(frozen=True)
class Case:
    """One published case of leukemic infiltration (every case's cause is infiltration)."""

    id: str
    ref: str
    phase: str
    form: str | None
    values: dict[str, str | None]  # categorical findings (possibly partly known)
    csf: tuple[tuple[str, str], ...] | None  # (result, method) with the method resolved; None = not stated
    proven_by: tuple[str, ...]
    also_known_as: tuple[str, ...] = ()

    @property
    def in_population(self) -> bool:
        """Palsy in a known leukemia: the case informs lineage and remission (DESIGN §4)."""
        return self.phase == "after_diagnosis"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A cohort count (``kind == 'counts'``) or an expert-judgment Beta for one node of one cause.

    ``quantity`` says what the entry measures: ``tree`` (P(level | of) of a tree item), ``lp`` (an LP
    method's positive rate under the CSF model: ``method``, ``contaminated``) or ``node`` (one node
    of the CSF model, ``lp_node``). ``cause`` is None for a node shared by every cause (a property of
    the laboratory)."""

    id: str
    kind: str
    refs: tuple[str, ...]
    finding: str
    item: str  # the tree item (csf_profile by the first LP's class), or the LP finding's name
    cause: str | None
    form: str | None
    level: tuple[str, ...]
    of: tuple[str, ...]
    x: float = 0.0
    n: float = 0.0
    weight: float = 1.0
    beta: tuple[float, float] | None = None
    tabulates_cases: tuple[str, ...] = ()
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    quantity: str = "tree"
    method: str | None = None
    lp_node: str | None = None
    contaminated: bool = False


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Everything in ``priors/``, validated."""

    directory: Path
    references: dict[str, dict[str, Any]]
    cases: tuple[Case, ...]
    entries: tuple[Entry, ...]
    rates: "RateSpec"
    settings: dict[str, Any]
    hash: str
    schema: SC.Schema

    @property
    def structure(self) -> ST.Structure:
        return ST.of(self.schema)

    @property
    def w_case(self) -> float:
        return float(self.settings["w_case"])

    @property
    def forms(self) -> tuple[str, ...]:
        return tuple(self.settings["forms"])

    @property
    def causes(self) -> tuple[str, ...]:
        return tuple(self.settings["causes"])

    def variant(self, name: str) -> Variant:
        """The variant ``name`` over these causes and forms."""
        return variants.get(name, self.causes, self.forms)

    def case(self, case_id: str) -> Case | None:
        """The case with this id or alias (a patient file id), if any."""
        for c in self.cases:
            if c.id == case_id or case_id in c.also_known_as:
                return c
        return None

    def without_entries(self, drop: set[str]) -> "Evidence":
        """The evidence without the cohort entries and cases whose id or reference is in ``drop``."""
        return dataclasses.replace(
            self,
            entries=tuple(e for e in self.entries if e.id not in drop and not set(e.refs) & drop),
            cases=tuple(c for c in self.cases if c.id not in drop and c.ref not in drop),
        )


def _read(directory: Path) -> tuple[dict[str, bytes | None], list[str]]:
    """The bytes of each evidence file (``None`` if missing) and the problems reading them.

    Every file goes through :func:`palsy.model.safe_yaml.read_bytes`: regular files only, size-limited."""
    blobs: dict[str, bytes | None] = {name: None for name in FILES}
    problems: list[str] = []
    if not directory.is_dir():
        what = "does not exist" if not os.path.lexists(directory) else "is not a folder"
        return blobs, [f"{directory}: {what}; give the folder of the evidence files ({', '.join(FILES)})"]
    for name in FILES:
        path = directory / name
        if not os.path.lexists(path):
            blobs[name] = None
            continue
        try:
            blobs[name] = Y.read_bytes(path)
        except Y.YAMLInputError as exc:
            blobs[name] = None
            problems.append(str(exc))
    return blobs, problems


def _hash(blobs: dict[str, bytes | None]) -> str:
    h = hashlib.sha256()
    for name in FILES:
        h.update(name.encode())
        blob = blobs.get(name)
        h.update(b"<missing>" if blob is None else blob)
    return h.hexdigest()


def evidence_hash(directory: str | Path) -> str:
    """SHA-256 over the evidence files' bytes (the cache key's evidence part).

    Raises
    ------
    EvidenceError
        If an evidence file exists but cannot be read (a folder, a device, too large).
    """
    blobs, problems = _read(Path(directory))
    if problems:
        raise EvidenceError(problems)
    return _hash(blobs)


def load(directory: str | Path | None = None) -> Evidence:
    """Load and validate the evidence in ``directory`` (default: the evidence shipped with palsy).

    Each file is read once (the hash is of the bytes parsed) through :mod:`palsy.model.safe_yaml`.

    Raises
    ------
    EvidenceError
        With every problem found, each naming the file, the entry and the field.
    """
    directory = paths.priors() if directory is None else Path(directory)
    blobs, problems = _read(directory)
    if not directory.is_dir():
        raise EvidenceError(problems)
    docs: dict[str, Any] = {}
    for name in FILES:
        path = directory / name
        blob = blobs[name]
        if blob is None:
            if not any(p.startswith(f"{path}:") for p in problems):
                problems.append(f"{path}: file missing")
            continue
        try:
            docs[name] = Y.loads(Y.decode(blob, path), path)
        except Y.YAMLInputError as exc:
            problems.append(str(exc))
    if problems:
        raise EvidenceError(problems)
    problems += SC.validate(docs["schema.yaml"], directory / "schema.yaml")
    if problems:  # every other file is read against the schema
        raise EvidenceError(problems)
    schema = SC.from_doc(docs["schema.yaml"])
    v = _Validator(directory, problems, schema)
    refs = v.references(docs["references.yaml"])
    settings = v.settings(docs["model.yaml"])
    cases = v.cases(docs["cases.yaml"], refs, settings)
    entries = v.entries(docs["cohorts.yaml"], refs, settings, {c.id for c in cases})
    causes = tuple(settings.get("causes") or ())
    spec = R.parse(docs["rates.yaml"], causes, refs,
                   lambda entry, field, msg: v.err("rates.yaml", entry, field, msg), ST.of(schema)) if causes else None
    if problems:
        raise EvidenceError(problems)
    return Evidence(directory, refs, tuple(cases), tuple(entries), spec, settings, _hash(blobs), schema)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class _Validator:
    def __init__(self, directory: Path, problems: list[str], schema: SC.Schema) -> None:
        self.dir = directory
        self.problems = problems
        self.sc = schema
        self.st = ST.of(schema)

    def err(self, file: str, entry: str, field: str, msg: str) -> None:
        self.problems.append(f"{self.dir / file}: entry {brief(entry)}: field {brief(field)}: {msg}")

    # -- references ------------------------------------------------------------------------------
    def references(self, doc: Any) -> dict[str, dict[str, Any]]:
        file = "references.yaml"
        if not isinstance(doc, dict):
            self.err(file, "-", "-", "must be a mapping of citation keys to references")
            return {}
        for key, ref in doc.items():
            if not isinstance(ref, dict):
                self.err(file, str(key), "-", "must be a mapping (authors, title, journal, year, doi, pmid)")
                continue
            for field in ("authors", "title", "year"):
                if not ref.get(field):
                    self.err(file, str(key), field, "missing")
            if "doi" not in ref and "pmid" not in ref:
                self.err(file, str(key), "doi", "give doi and/or pmid (null where unknown)")
        return {str(k): v for k, v in doc.items() if isinstance(v, dict)}

    def _refs(self, file: str, entry: str, value: Any, refs: dict, required: bool = True) -> tuple[str, ...]:
        if value is None:
            if required:
                self.err(file, entry, "ref", "missing; give a key of references.yaml")
            return ()
        keys = [value] if isinstance(value, str) else value
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            self.err(file, entry, "ref", f"{brief(value)} must be a key or a list of keys of references.yaml")
            return ()
        if not keys:
            if required:
                self.err(file, entry, "ref", "an empty list; give a key of references.yaml")
            return ()
        for k in keys:
            if k not in refs:
                self.err(file, entry, "ref", f"{brief(k)} is not a key of references.yaml")
        return tuple(keys)

    def _ids(self, file: str, entry: str, field: str, value: Any, what: str) -> tuple[str, ...]:
        """A list of ids (text); one id alone is read as a list of one; anything else is one error."""
        if value is None:
            return ()
        ids = [value] if isinstance(value, str) else value
        if not isinstance(ids, list) or not all(isinstance(i, str) and i.strip() for i in ids):
            self.err(file, entry, field, f"{brief(value)}: give a list of {what} (each one text)")
            return ()
        return tuple(ids)

    # -- model.yaml ------------------------------------------------------------------------------
    def settings(self, doc: Any) -> dict[str, Any]:
        file = "model.yaml"
        if not isinstance(doc, dict):
            self.err(file, "-", "-", "must be a mapping")
            return {}
        bp = doc.get("base_prior")
        if not (isinstance(bp, dict) and _is_num(bp.get("a")) and _is_num(bp.get("b")) and bp["a"] > 0 and bp["b"] > 0):
            self.err(file, "base_prior", "a/b", f"{brief(bp)}: give {{a: >0, b: >0}}")
        w = doc.get("w_case")
        if not (_is_num(w) and 0 < w <= 1):
            self.err(file, "w_case", "w_case", f"{brief(w)} is not in (0, 1]")
        if doc.get("unknown_csf_method") not in self.sc.lp.methods:
            self.err(file, "unknown_csf_method", "unknown_csf_method",
                     f"{brief(doc.get('unknown_csf_method'))}; allowed: {', '.join(self.sc.lp.methods)}")
        causes = doc.get("causes")
        if not (isinstance(causes, list) and variants.INFILTRATION in causes and len(causes) >= 2
                and all(isinstance(c, str) for c in causes) and len(set(causes)) == len(causes)):
            self.err(file, "causes", "causes", f"{brief(causes)}: give a list of distinct cause names including "
                                               f"{brief(variants.INFILTRATION)} and at least one other")
            doc["causes"] = []
        labels = doc.get("cause_labels")
        if not (isinstance(labels, dict) and set(labels) == set(doc.get("causes") or ())
                and all(isinstance(v, dict) and isinstance(v.get("label"), str) and v["label"].strip()
                        and set(v) <= {"label", "short"} for v in labels.values())):
            self.err(file, "cause_labels", "cause_labels", f"{brief(labels)}: give {{label, short}} for each cause of "
                                                           f"`causes` ({', '.join(doc.get('causes') or ())})")
            doc["cause_labels"] = {c: {"label": c.replace("_", " ")} for c in doc.get("causes") or ()}
        syn = doc.get("synthesis")
        re_ = syn.get("random_effects") if isinstance(syn, dict) else None
        sel = syn.get("selection") if isinstance(syn, dict) else None
        if not (isinstance(re_, dict) and _is_num(re_.get("tau_sigma")) and re_["tau_sigma"] > 0):
            self.err(file, "synthesis.random_effects", "tau_sigma", f"{brief(re_)}: give {{tau_sigma: > 0}}")
        gp = sel.get("gamma_prior") if isinstance(sel, dict) else None
        if not (isinstance(gp, dict) and _is_num(gp.get("mu")) and _is_num(gp.get("sigma")) and gp["sigma"] > 0):
            self.err(file, "synthesis.selection", "gamma_prior", f"{brief(gp)}: give {{mu, sigma: > 0}}")
        nodes = sel.get("nodes") if isinstance(sel, dict) else None
        if not isinstance(nodes, list) or not nodes:
            self.err(file, "synthesis.selection", "nodes", "give the list of striking features {finding, level}")
        else:
            for j, nd in enumerate(nodes):
                fname = nd.get("finding") if isinstance(nd, dict) else None
                lv = nd.get("level") if isinstance(nd, dict) else None
                lv = tuple(lv) if isinstance(lv, list) else (lv,)
                ok = (isinstance(fname, str) and fname in self.st.tree_findings and all(isinstance(x, str) for x in lv)
                      and self.st.find_node(fname, lv, self.st.items[fname]) is not None)
                if not ok:
                    self.err(file, f"synthesis.selection.nodes[{j + 1}]", "finding/level",
                             f"{brief(nd)}: give a tree finding and the level(s) of a node over all its levels")
        at = doc.get("atypicality")
        if not (isinstance(at, dict) and _is_num(at.get("tail")) and 0 < at["tail"] < 0.5):
            self.err(file, "atypicality", "tail", f"{brief(at)}: give {{tail: a probability in (0, 0.5)}}")
        hm = doc.get("hallmarks")
        if not (isinstance(hm, dict) and set(hm) <= set(doc.get("causes") or ())):
            self.err(file, "hallmarks", "hallmarks", "give a mapping cause -> list of {finding, value} for causes "
                                                     "of `causes`")
        else:
            for cause, marks in hm.items():
                if not isinstance(marks, list | None):
                    self.err(file, f"hallmarks.{cause}", "hallmarks", f"{brief(marks)}: give a list of {{finding, value}}")
                    continue
                for j, mk in enumerate(marks or []):
                    fname = mk.get("finding") if isinstance(mk, dict) else None
                    fname = fname if isinstance(fname, str) else None
                    value = self.sc.as_level(fname, mk.get("value")) if fname in self.sc.levels else None
                    if fname not in self.sc.levels or value not in self.sc.levels[fname]:
                        self.err(file, f"hallmarks.{cause}[{j + 1}]", "finding/value",
                                 f"{brief(mk)}: give a categorical finding and one of its levels")
                    else:
                        mk["value"] = value
        sc = doc.get("scope")
        if not (isinstance(sc, dict) and all(isinstance(sc.get(k), str) and sc[k].strip() for k in ("central", "at_diagnosis"))):
            self.err(file, "scope", "central/at_diagnosis", "give the note shown for each out-of-scope case")
        nm = doc.get("not_modelled")
        if not (isinstance(nm, list) and nm and all(isinstance(x, str) for x in nm)):
            self.err(file, "not_modelled", "not_modelled", f"{brief(nm)}: give the list of causes not modelled")
        forms = doc.get("forms")
        if not (isinstance(forms, list) and len(forms) >= 2 and all(isinstance(f, str) for f in forms)
                and len(set(forms)) == len(forms)):
            self.err(file, "forms", "forms", f"{brief(forms)}: give a list of at least two distinct form names")
            forms = doc["forms"] = []  # the other files are checked against no forms, not against bad ones
        fp = doc.get("form_prior")
        ok = lambda m: isinstance(m, dict) and set(m) == set(forms) and all(_is_num(v) and v > 0 for v in m.values())
        if ok(fp):  # the same prior for every lineage
            doc["form_prior"] = {lin: dict(fp) for lin in self.st.levels_of("lineage")}
        elif not (isinstance(fp, dict) and set(fp) == set(self.st.levels_of("lineage")) and all(ok(m) for m in fp.values())):
            self.err(file, "form_prior", "form_prior",
                     f"{brief(fp)}: give a positive concentration for each form {forms}, "
                     f"or such a mapping for each lineage {list(self.st.levels_of('lineage'))}")
        return doc

    # -- cases.yaml ------------------------------------------------------------------------------
    def cases(self, doc: Any, refs: dict, settings: dict) -> list[Case]:
        file = "cases.yaml"
        items = doc.get("cases") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            self.err(file, "-", "cases", "give a top-level list `cases:`")
            return []
        forms = tuple(settings.get("forms") or ())
        out, seen = [], set()
        for i, c in enumerate(items):
            cid, id_ok = Y.item_id(c, i)
            if not isinstance(c, dict):
                self.err(file, cid, "-", "must be a mapping")
                continue
            if not id_ok:
                self.err(file, cid, "id", f"{brief(c.get('id'))}: give the case's id (text, not blank)")
            if cid in seen:
                self.err(file, cid, "id", "duplicate case id")
            seen.add(cid)
            for key in set(c) - CASE_KEYS:
                self.err(file, cid, key, f"unknown field; allowed: {', '.join(sorted(CASE_KEYS))}")
            ref = self._refs(file, cid, c.get("ref"), refs)
            phase = c.get("phase", "unknown")
            if phase not in PHASES:
                self.err(file, cid, "phase", f"{brief(phase)}; allowed: {', '.join(PHASES)}")
            form = c.get("form")
            form = None if form in (None, SC.UNKNOWN) else form
            if form is not None and form not in forms:
                self.err(file, cid, "form", f"{brief(form)}; allowed: {', '.join(forms)}, unknown")
            fnd = c.get("findings")
            if not isinstance(fnd, dict):
                self.err(file, cid, "findings", "give a mapping of findings")
                fnd = {}
            for key in set(fnd) - set(self.sc.findings):
                self.err(file, cid, f"findings.{key}", f"unknown finding; allowed: {', '.join(self.sc.findings)}")
            values = {}
            for name in self.sc.categorical:
                raw = self.sc.as_level(name, fnd.get(name))
                if raw in (None, SC.UNKNOWN):
                    values[name] = None
                    continue
                ok = self.sc.evidence_levels(name)
                if raw not in ok:
                    self.err(file, cid, f"findings.{name}", f"{brief(raw)}; allowed: {', '.join(ok)}, unknown")
                values[name] = raw
            csf = self._case_csf(file, cid, fnd.get("csf"), settings)
            proven = c.get("proven_by") or []
            if not isinstance(proven, list) or not proven:
                self.err(file, cid, "proven_by", "give the list of findings or tests that established infiltration")
                proven = []
            for p in proven:
                if p not in self.sc.findings and p not in OTHER_PROOF:
                    self.err(file, cid, "proven_by", f"{brief(p)}; allowed: {', '.join(self.sc.findings + OTHER_PROOF)}")
            aka = self._ids(file, cid, "also_known_as", c.get("also_known_as"), "other ids of this case")
            out.append(Case(cid, ref[0] if ref else "", phase, form, values, csf, tuple(proven), aka))
        return out

    def _case_csf(self, file: str, cid: str, raw: Any, settings: dict) -> tuple[tuple[str, str], ...] | None:
        if raw in (None, SC.UNKNOWN):
            return None
        if not isinstance(raw, list):
            self.err(file, cid, "findings.csf", f"{brief(raw)}: give a list of {{result, method}} or unknown")
            return None
        default = settings.get("unknown_csf_method", "cytology")
        lps = []
        for j, lp in enumerate(raw, start=1):
            if not isinstance(lp, dict) or lp.get("result") not in self.sc.lp.results:
                self.err(file, cid, f"findings.csf[{j}].result",
                         f"{brief(lp)}; allowed results: {', '.join(self.sc.lp.results)}")
                continue
            method = lp.get("method", SC.UNKNOWN)
            if method not in self.sc.lp.methods + (SC.UNKNOWN,):
                self.err(file, cid, f"findings.csf[{j}].method",
                         f"{brief(method)}; allowed: {', '.join(self.sc.lp.methods)}, unknown")
                continue
            lps.append((lp["result"], default if method == SC.UNKNOWN else method))
        return tuple(lps)

    # -- cohorts.yaml ----------------------------------------------------------------------------
    def entries(self, doc: Any, refs: dict, settings: dict, case_ids: set[str]) -> list[Entry]:
        file = "cohorts.yaml"
        items = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            self.err(file, "-", "entries", "give a top-level list `entries:`")
            return []
        forms = tuple(settings.get("forms") or ())
        causes = tuple(settings.get("causes") or ())
        lp_name = self.sc.lp.name
        out, seen, sources = [], set(), {}
        for i, e in enumerate(items):
            eid, id_ok = Y.item_id(e, i)
            if not isinstance(e, dict):
                self.err(file, eid, "-", "must be a mapping")
                continue
            n_before = len(self.problems)
            if not id_ok:
                self.err(file, eid, "id", f"{brief(e.get('id'))}: give the entry's id (text, not blank)")
            if eid in seen:
                self.err(file, eid, "id", "duplicate entry id")
            seen.add(eid)
            for key in set(e) - ENTRY_KEYS:
                near = difflib.get_close_matches(str(key), sorted(ENTRY_KEYS), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                self.err(file, eid, key, f"unknown field{hint} allowed: {', '.join(sorted(ENTRY_KEYS))}")
            kind = e.get("kind", "counts")
            if kind not in ("counts", "expert_judgment"):
                self.err(file, eid, "kind", f"{brief(kind)}; allowed: counts, expert_judgment")
            ref = self._refs(file, eid, e.get("ref"), refs, required=(kind == "counts"))
            finding = e.get("finding")
            if finding not in self.sc.findings:
                self.err(file, eid, "finding", f"{brief(finding)}; allowed: {', '.join(self.sc.findings)}")
                continue
            if finding in self.sc.context:
                self.err(file, eid, "finding", f"{brief(finding)} is a context finding: it enters through the rate "
                                               f"model of rates.yaml, not as counts here")
                continue
            if finding in self.sc.scope:
                self.err(file, eid, "finding", f"{finding} sets the scope and is not evidence")
                continue
            hyp, form = e.get("cause"), e.get("form")
            method, given, lp_node, context = e.get("method"), e.get("given"), e.get("lp_node"), e.get("context")
            quantity, item, level, of, contaminated = "tree", finding, (), (), False
            if finding == lp_name:
                if lp_node is not None:  # a node of the CSF model
                    quantity, item = "node", lp_name
                    share = self.st.lp_keys.get(lp_node)
                    if share is None:
                        self.err(file, eid, "lp_node", f"{brief(lp_node)}; allowed: {', '.join(self.st.lp_keys)}")
                        continue
                    if share == "shared" and (hyp is not None or form is not None):
                        self.err(file, eid, "cause", f"{brief(hyp)}: the node {lp_node} is shared by every cause (a "
                                                     f"property of the laboratory): give cause: null")
                        continue
                    if share == "infiltration" and hyp != variants.INFILTRATION:
                        self.err(file, eid, "cause", f"{brief(hyp)}: only {variants.INFILTRATION} has the node "
                                                     f"{lp_node} (a structural zero for every other cause)")
                        continue
                    for key, val in (("method", method), ("level", e.get("level")), ("of", e.get("of")), ("context", context)):
                        if val is not None:
                            self.err(file, eid, key, f"{brief(val)}: an lp_node entry takes no {key}")
                else:  # a set of LP result patterns under the CSF model, P(level | of)
                    quantity, item = "lp", lp_name
                    sets = tuple(LP.pattern_sets(self.sc.lp.methods))
                    lv, of_name = e.get("level"), e.get("of") or "all"
                    if method is not None:  # `method: cytology, level: positive` is `level: cytology_positive`
                        if method not in self.sc.lp.methods or lv != "positive":
                            self.err(file, eid, "method", f"{brief(method)} with level {brief(lv)}: give a method of "
                                                          f"{', '.join(self.sc.lp.methods)} with level: positive, or a "
                                                          f"level of {', '.join(sets)} without method, or lp_node")
                            continue
                        lv = f"{method}_positive"
                    if lv not in sets or of_name not in sets or lv == of_name:
                        self.err(file, eid, "level/of", f"{brief(lv)} of {brief(of_name)}: give two different sets of "
                                                        f"LP results: {', '.join(sets)}")
                        continue
                    level, of = (lv,), (of_name,)
                    if context is not None:
                        if context != CONTAMINATED:
                            self.err(file, eid, "context", f"{brief(context)}: give {CONTAMINATED} for a population "
                                                           f"in which every tap was traumatic with circulating blasts, or leave it out")
                            continue
                        contaminated = True
                if hyp is not None and hyp not in causes:
                    self.err(file, eid, "cause", f"{brief(hyp)}; allowed: {', '.join(causes)}, or null for a shared node")
                    continue
                if quantity == "lp" and hyp is None:
                    self.err(file, eid, "cause", "an LP rate entry is about one cause (or form): give it")
                    continue
            else:
                for key, val in (("method", method), ("lp_node", lp_node), ("context", context)):
                    if val is not None:
                        self.err(file, eid, key, f"{brief(val)}; only {lp_name} entries take {key}")
                if finding == self.sc.profile and given not in self.sc.lp.results:
                    self.err(file, eid, "given", f"{brief(given)}; allowed for {finding} (the first LP's class: no "
                                                 f"malignant cells or some): {', '.join(self.sc.lp.results)}")
                    continue
                if finding != self.sc.profile and given is not None:
                    self.err(file, eid, "given", f"{brief(given)}; only {self.sc.profile} entries take `given`")
                item = self.st.item_of(finding, given)
                levels = self.sc.levels[finding]
                level = self._group(file, eid, "level", e.get("level"), finding, levels)
                of = self._group(file, eid, "of", e.get("of"), finding, levels) if e.get("of") is not None else levels
                if level is None or of is None:
                    continue
                if not set(level) < set(of):
                    self.err(file, eid, "level", f"{list(level)} must be a proper part of `of` {list(of)}")
                    continue
                node = self.st.find_node(item, level, of)
                if node is None:
                    nodes = "; ".join(f"{list(n.success)} of {list(n.of)}" for n in self.st.nodes if n.item == item)
                    self.err(file, eid, "level/of", f"{list(level)} of {list(of)} is not a node of the {finding} tree; nodes: {nodes}")
                    continue
                if self.st.nodes[node].sharing == "shared":
                    if hyp is not None or form is not None:
                        self.err(file, eid, "cause", f"{brief(hyp)}: {item} is the same whatever the cause (shared by "
                                                     f"every cause): give cause: null")
                        continue
                elif hyp not in causes:
                    self.err(file, eid, "cause", f"{brief(hyp)}; allowed: {', '.join(causes)}")
                    continue
            if form is not None and (hyp != variants.INFILTRATION or form not in forms):
                self.err(file, eid, "form", f"{brief(form)}; allowed: null, or with cause "
                                            f"{variants.INFILTRATION} one of {', '.join(forms)}")
            tab = self._ids(file, eid, "tabulates_cases", e.get("tabulates_cases"), "case ids of cases.yaml")
            for cid in tab:
                if cid not in case_ids:
                    self.err(file, eid, "tabulates_cases", f"{brief(cid)} is not a case id of cases.yaml")
            beta, x, n, w = None, 0.0, 0.0, 1.0
            if kind == "expert_judgment":
                if quantity == "lp":
                    self.err(file, eid, "kind", "an expert judgment is a prior on one node: give lp_node for the CSF "
                                                "model (an LP's positive rate is not a node)")
                b = e.get("beta")
                if not (isinstance(b, dict) and _is_num(b.get("a")) and _is_num(b.get("b")) and b["a"] > 0 and b["b"] > 0):
                    self.err(file, eid, "beta", f"{brief(b)}: give {{a: >0, b: >0}}")
                else:
                    beta = (float(b["a"]), float(b["b"]))
                if not e.get("reasoning"):
                    self.err(file, eid, "reasoning", "expert judgment needs its reasoning")
            else:
                x, n, w = e.get("x"), e.get("n"), e.get("weight")
                if not (_is_num(n) and n > 0):
                    self.err(file, eid, "n", f"{brief(n)} must be a number > 0")
                if not (_is_num(x) and x >= 0):
                    self.err(file, eid, "x", f"{brief(x)} must be a number >= 0")
                elif _is_num(n) and x > n:
                    self.err(file, eid, "x", f"{brief(x)} is larger than n = {brief(n)}")
                if not (_is_num(w) and 0 < w <= 1):
                    self.err(file, eid, "weight", f"{brief(w)} is not in (0, 1]")
                elif not e.get("weight_reason"):
                    self.err(file, eid, "weight_reason", "say why this weight")
            if len(self.problems) > n_before:
                continue
            key = (kind, tuple(sorted(ref)), quantity, item, hyp, form, level, of, method, lp_node, contaminated)
            if key in sources:
                self.err(file, eid, "ref", f"duplicate source: same reference and quantity as entry {brief(sources[key])}")
            sources[key] = eid
            out.append(Entry(eid, kind, ref, finding, item, hyp, form, level, of,
                             float(x or 0), float(n or 0), float(w or 1), beta, tuple(tab), e,
                             quantity, method, lp_node, contaminated))
        self._no_double_counting(file, out)
        return out

    def _group(self, file: str, eid: str, field: str, raw: Any, finding: str, levels: tuple[str, ...]):
        vals = raw if isinstance(raw, list) else [raw]
        out = []
        for v in vals:
            expanded = self.sc.expand(finding, v) if isinstance(v, str) else (v,)
            for lv in expanded:
                if lv not in levels:
                    ok = ", ".join(self.sc.evidence_levels(finding))
                    self.err(file, eid, field, f"{brief(v)} is not a level of {finding}; allowed: {ok}")
                    return None
                out.append(lv)
        return tuple(lv for lv in levels if lv in out)

    def _no_double_counting(self, file: str, entries: list[Entry]) -> None:  # noqa: D401
        ej, counted = {}, {}
        for e in entries:
            key = (e.quantity, e.item, e.cause, e.form, e.level, e.of, e.lp_node)
            (ej if e.kind == "expert_judgment" else counted).setdefault(key, []).append(e.id)
        for key, ids in ej.items():
            if len(ids) > 1:
                self.err(file, ids[1], "kind", f"two expert judgments for the same node: {ids}")
            if key in counted:
                self.err(file, ids[0], "kind",
                         f"expert judgment and counts ({', '.join(counted[key])}) for the same quantity: use one")
