"""Load and validate ``priors/`` (docs/design.md §3): ``load(dir) -> Evidence``.

Every problem in every file is collected into one :class:`EvidenceError` naming the file, the entry
and the field. Nothing numeric about the clinical world is defined here: it is all read from YAML.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from palsy.model import crossref as X
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
#: An LP rate entry's population may have had contamination: traumatic taps with circulating blasts.
CONTAMINATED = {"traumatic": "yes", "circulating_blasts": "present"}


class EvidenceError(ValueError):
    """Invalid evidence: every problem, each naming file, entry and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        # each problem names its file (the folder may be any copy of priors/, not the shipped one)
        super().__init__("invalid evidence:\n" + "\n".join(f"  - {p}" for p in problems))


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
        """Palsy in a known leukemia: the case informs lineage and remission (docs/design.md §4)."""
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


def load(directory: str | Path | None = None, *, companions: bool = True) -> Evidence:
    """Load and validate the evidence in ``directory`` (default: the evidence shipped with palsy).

    Each file is read once (the hash is of the bytes parsed) through :mod:`palsy.model.safe_yaml`, then
    checked by its model (:mod:`palsy.model.file_models`: keys, types, ranges) and by the rules of meaning
    between the files (the schema's findings and levels, the causes and forms of ``model.yaml``, the keys
    of ``references.yaml``, the cases of ``cases.yaml``; :mod:`palsy.model.crossref`). With ``model.yaml``'s
    ``node_coverage: required`` (the default) every free node parameter of every cause must have evidence
(``partial`` allows gaps: test fixtures). With
    ``companions`` the files an answer reads besides the fit's (``decision.yaml``, ``actions.yaml``,
    ``validation.yaml``, ``teaching_cases.yaml``, ``fhir_map.yaml``, those present) are checked against
    them too, so that a misspelt cause in an action is found before a fit, not after it.

    Raises
    ------
    EvidenceError
        With every problem found, each naming the file, the entry, the field, the value and what is allowed.
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
    spec = v.rates(docs["rates.yaml"], causes, refs) if causes else None
    ev = Evidence(directory, refs, tuple(cases), tuple(entries), spec, settings, _hash(blobs), schema)
    if not problems and settings.get("node_coverage", "required") == "required":
        problems += X.coverage_problems(ev, directory / "cohorts.yaml")
    if companions:  # checked against what the fit's files say, even where some of it is wrong
        problems += X.companions(directory, X.context_of(ev, docs["rates.yaml"]))
    if problems:
        raise EvidenceError(problems)
    return ev


class _Validator:
    """The rules of meaning of the fit's files (each file's shape is its model's: :mod:`palsy.model.file_models`).

    Every problem is appended to ``problems``; an entry whose shape is wrong is reported by its model and
    not checked further."""

    def __init__(self, directory: Path, problems: list[str], schema: SC.Schema) -> None:
        from palsy.model.file_models import base, evidence_files

        self.dir = directory
        self.problems = problems
        self.sc = schema
        self.st = ST.of(schema)
        self.base = base
        self.models = evidence_files

    def err(self, file: str, entry: str, field: str, msg: str) -> None:
        self.problems.append(f"{self.dir / file}: entry {brief(entry)}: field {brief(field)}: {msg}")

    def shape(self, model: Any, doc: Any, file: str, entry_of: Any = None) -> bool:
        """Check ``doc`` by its model; True when its shape is right."""
        found = self.base.check(model, doc, str(self.dir / file), entry_of)
        self.problems += found
        return not found

    def _refs(self, file: str, entry: str, keys: tuple[str, ...], refs: dict) -> None:
        self.problems += X.cited(self.dir / file, entry, "ref", keys, refs)

    # -- references ------------------------------------------------------------------------------
    def references(self, doc: Any) -> dict[str, dict[str, Any]]:
        file = "references.yaml"
        self.shape(self.models.ReferencesFile, doc, file, self.base.entries_by_id(doc, keyed=True))
        return {str(k): v for k, v in doc.items() if isinstance(v, dict)} if isinstance(doc, dict) else {}

    # -- model.yaml ------------------------------------------------------------------------------
    def settings(self, doc: Any) -> dict[str, Any]:
        """The settings, with ``form_prior`` per lineage and hallmark values as levels; when the file is
        wrong, the causes and forms that can be read (so that the other files are checked against them)."""
        file = "model.yaml"
        if not self.shape(self.models.ModelFile, doc, file):
            if not isinstance(doc, dict):
                return {}
            names = lambda v: list(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else []  # noqa: E731
            return {**doc, "causes": names(doc.get("causes")), "forms": names(doc.get("forms"))}
        found = X.model_file(doc, self.dir / file, self.sc)
        self.problems += found
        if found:
            return {**doc, "causes": list(doc["causes"]) if variants.INFILTRATION in doc["causes"] else []}
        fp = doc["form_prior"]
        if all(not isinstance(m, dict) for m in fp.values()):  # the same prior for every lineage
            doc["form_prior"] = {lin: dict(fp) for lin in self.st.levels_of("lineage")}
        for marks in doc["hallmarks"].values():
            for mk in marks or []:
                mk["value"] = self.sc.as_level(mk["finding"], mk["value"])
        return doc

    # -- cases.yaml ------------------------------------------------------------------------------
    def cases(self, doc: Any, refs: dict, settings: dict) -> list[Case]:
        file = "cases.yaml"
        items, found = self.base.validated_items(self.models.CasesFile, self.models.CaseEntry, doc, "cases",
                                                 str(self.dir / file))
        self.problems += found
        forms = tuple(settings.get("forms") or ())
        raw_items = doc.get("cases") if isinstance(doc, dict) else []
        out, seen = [], {Y.item_id(c, i)[0] for i, c in enumerate(raw_items or []) if i not in dict(items)}
        for _, c in items:
            cid = c.id
            if cid in seen:
                self.err(file, cid, "id", "duplicate case id")
            seen.add(cid)
            self._refs(file, cid, c.ref, refs)
            form = None if c.form in (None, SC.UNKNOWN) else c.form
            if form is not None and form not in forms:
                self.err(file, cid, "form", X.not_allowed(form, (*forms, SC.UNKNOWN)))
            for key in c.findings:
                if key not in self.sc.findings:
                    self.err(file, cid, f"findings.{key}", X.not_allowed(key, self.sc.findings, "is not a finding"))
            values = {}
            for name in self.sc.categorical:
                raw = self.sc.as_level(name, c.findings.get(name))
                if raw in (None, SC.UNKNOWN):
                    values[name] = None
                    continue
                ok = self.sc.evidence_levels(name)
                if raw not in ok:
                    self.err(file, cid, f"findings.{name}", X.not_allowed(raw, (*ok, SC.UNKNOWN)))
                values[name] = raw
            csf = self._case_csf(file, cid, c.findings.get(self.sc.lp.name), settings)
            for p in c.proven_by:
                if p not in self.sc.findings and p not in OTHER_PROOF:
                    self.err(file, cid, "proven_by", X.not_allowed(p, self.sc.findings + OTHER_PROOF))
            out.append(Case(cid, c.ref[0], c.phase, form, values, csf, tuple(c.proven_by), c.also_known_as or ()))
        return out

    def _case_csf(self, file: str, cid: str, raw: Any, settings: dict) -> tuple[tuple[str, str], ...] | None:
        if raw in (None, SC.UNKNOWN):
            return None
        name = self.sc.lp.name
        if not isinstance(raw, list):
            self.err(file, cid, f"findings.{name}", f"{brief(raw)}: give a list of {{result, method}} or unknown")
            return None
        default = settings.get("unknown_csf_method", self.sc.lp.methods[0])
        lps = []
        for j, lp in enumerate(raw, start=1):
            if not isinstance(lp, dict) or lp.get("result") not in self.sc.lp.results:
                self.err(file, cid, f"findings.{name}[{j}].result",
                         f"{brief(lp)}; allowed results: {', '.join(self.sc.lp.results)}")
                continue
            extra = sorted(map(str, set(lp) - {"result", "method"}))
            if extra:
                self.err(file, cid, f"findings.{name}[{j}]", X.not_allowed(extra[0], ("result", "method"), "is not a key"))
                continue
            method = lp.get("method", SC.UNKNOWN)
            if method not in self.sc.lp.methods + (SC.UNKNOWN,):
                self.err(file, cid, f"findings.{name}[{j}].method", X.not_allowed(method, (*self.sc.lp.methods, SC.UNKNOWN)))
                continue
            lps.append((lp["result"], default if method == SC.UNKNOWN else method))
        return tuple(lps)

    # -- cohorts.yaml ----------------------------------------------------------------------------
    def entries(self, doc: Any, refs: dict, settings: dict, case_ids: set[str]) -> list[Entry]:
        file = "cohorts.yaml"
        items, found = self.base.validated_items(self.models.CohortsFile, self.models.CohortEntry, doc, "entries",
                                                 str(self.dir / file))
        self.problems += found
        raw_items = doc.get("entries") if isinstance(doc, dict) else []
        forms = tuple(settings.get("forms") or ())
        causes = tuple(settings.get("causes") or ())
        out, sources = [], {}
        seen = {Y.item_id(e, i)[0] for i, e in enumerate(raw_items or []) if i not in dict(items)}
        for i, e in items:
            eid = e.id
            n_before = len(self.problems)
            if eid in seen:
                self.err(file, eid, "id", "duplicate entry id")
            seen.add(eid)
            self._refs(file, eid, e.ref or (), refs)
            resolved = self._quantity(file, e, causes, forms)
            for cid in e.tabulates_cases or ():
                if cid not in case_ids:
                    self.err(file, eid, "tabulates_cases", f"{brief(cid)} is not a case id of cases.yaml")
            if resolved is None or len(self.problems) > n_before:
                continue
            quantity, item, level, of, contaminated = resolved
            ref = e.ref or ()
            key = (e.kind, tuple(sorted(ref)), quantity, item, e.cause, e.form, level, of, e.method, e.lp_node, contaminated)
            if key in sources:
                self.err(file, eid, "ref", f"duplicate source: same reference and quantity as entry {brief(sources[key])}")
            sources[key] = eid
            beta = (e.beta.a, e.beta.b) if e.kind == "expert_judgment" and e.beta else None
            counts = e.kind == "counts"
            out.append(Entry(eid, e.kind, ref, e.finding, item, e.cause, e.form, level, of,
                             float(e.x or 0) if counts else 0.0, float(e.n or 0) if counts else 0.0,
                             float(e.weight or 1) if counts else 1.0, beta, tuple(e.tabulates_cases or ()),
                             raw_items[i], quantity, e.method, e.lp_node, contaminated))
        self._no_double_counting(file, out)
        return out

    def _quantity(self, file: str, e: Any, causes: tuple[str, ...], forms: tuple[str, ...]):
        """What an entry measures (quantity, item, level, of, contaminated), or None with its problems."""
        eid, finding, hyp, form = e.id, e.finding, e.cause, e.form
        lp_name = self.sc.lp.name
        if finding not in self.sc.findings:
            self.err(file, eid, "finding", X.not_allowed(finding, self.sc.findings))
            return None
        if finding in self.sc.context:
            self.err(file, eid, "finding", f"{brief(finding)} is a context finding: it enters through the rate "
                                           f"model of rates.yaml, not as counts here")
            return None
        if finding in self.sc.scope:
            self.err(file, eid, "finding", f"{finding} sets the scope and is not evidence")
            return None
        quantity, item, level, of, contaminated = "tree", finding, (), (), False
        if finding == lp_name:
            if e.lp_node is not None:  # a node of the CSF model
                quantity, item = "node", lp_name
                share = self.st.lp_keys.get(e.lp_node)
                if share is None:
                    self.err(file, eid, "lp_node", X.not_allowed(e.lp_node, self.st.lp_keys))
                    return None
                if share == "shared" and (hyp is not None or form is not None):
                    self.err(file, eid, "cause", f"{brief(hyp)}: the node {e.lp_node} is shared by every cause (a "
                                                 f"property of the laboratory): give cause: null")
                    return None
                if share == "infiltration" and hyp != variants.INFILTRATION:
                    self.err(file, eid, "cause", f"{brief(hyp)}: only {variants.INFILTRATION} has the node "
                                                 f"{e.lp_node} (a structural zero for every other cause)")
                    return None
                for key in ("method", "level", "of", "context", "given"):
                    if getattr(e, key) is not None:
                        self.err(file, eid, key, f"{brief(getattr(e, key))}: an lp_node entry takes no {key}")
            else:  # a set of LP result patterns under the CSF model, P(level | of)
                quantity, item = "lp", lp_name
                sets = tuple(LP.pattern_sets(self.sc.lp.methods))
                lv = e.level[0] if e.level and len(e.level) == 1 else e.level
                of_name = (e.of[0] if len(e.of) == 1 else e.of) if e.of else "all"
                if e.method is not None:  # `method: cytology, level: positive` is `level: cytology_positive`
                    if e.method not in self.sc.lp.methods or lv != "positive":
                        self.err(file, eid, "method", f"{brief(e.method)} with level {brief(lv)}: give a method of "
                                                      f"{', '.join(self.sc.lp.methods)} with level: positive, or a "
                                                      f"level of {', '.join(sets)} without method, or lp_node")
                        return None
                    lv = f"{e.method}_positive"
                if lv not in sets or of_name not in sets or lv == of_name:
                    self.err(file, eid, "level/of", f"{brief(lv)} of {brief(of_name)}: give two different sets of "
                                                    f"LP results: {', '.join(sets)}")
                    return None
                level, of = (lv,), (of_name,)
                if e.context is not None:
                    context = {k: self.sc.as_level(k, v) for k, v in e.context.items()}
                    if context != CONTAMINATED:
                        self.err(file, eid, "context", f"{brief(e.context)}: give {CONTAMINATED} for a population "
                                                       f"in which every tap was traumatic with circulating blasts, or leave it out")
                        return None
                    contaminated = True
                if e.given is not None:
                    self.err(file, eid, "given", f"{brief(e.given)}; only {self.sc.profile} entries take `given`")
                    return None
            if hyp is not None and hyp not in causes:
                self.err(file, eid, "cause", X.not_allowed(hyp, causes) + ", or null for a shared node")
                return None
            if quantity == "lp" and hyp is None:
                self.err(file, eid, "cause", "an LP rate entry is about one cause (or form): give it")
                return None
            if quantity == "lp" and e.kind == "expert_judgment":
                self.err(file, eid, "kind", "an expert judgment is a prior on one node: give lp_node for the CSF "
                                            "model (an LP's positive rate is not a node)")
                return None
        else:
            for key, val in (("method", e.method), ("lp_node", e.lp_node), ("context", e.context)):
                if val is not None:
                    self.err(file, eid, key, f"{brief(val)}; only {lp_name} entries take {key}")
            if finding == self.sc.profile and e.given not in self.sc.lp.results:
                self.err(file, eid, "given", f"{brief(e.given)}; allowed for {finding} (the first LP's class: no "
                                             f"malignant cells or some): {', '.join(self.sc.lp.results)}")
                return None
            if finding != self.sc.profile and e.given is not None:
                self.err(file, eid, "given", f"{brief(e.given)}; only {self.sc.profile} entries take `given`")
                return None
            item = self.st.item_of(finding, e.given)
            levels = self.sc.levels[finding]
            level = self._group(file, eid, "level", e.level, finding, levels)
            of = self._group(file, eid, "of", e.of, finding, levels) if e.of is not None else levels
            if level is None or of is None:
                return None
            if not set(level) < set(of):
                self.err(file, eid, "level", f"{list(level)} must be a proper part of `of` {list(of)}")
                return None
            node = self.st.find_node(item, level, of)
            if node is None:
                nodes = "; ".join(f"{list(n.success)} of {list(n.of)}" for n in self.st.nodes if n.item == item)
                self.err(file, eid, "level/of", f"{list(level)} of {list(of)} is not a node of the {finding} tree; nodes: {nodes}")
                return None
            if self.st.nodes[node].sharing == "shared":
                if hyp is not None or form is not None:
                    self.err(file, eid, "cause", f"{brief(hyp)}: {item} is the same whatever the cause (shared by "
                                                 f"every cause): give cause: null")
                    return None
            elif hyp not in causes:
                self.err(file, eid, "cause", X.not_allowed(hyp, causes))
                return None
        if form is not None and (hyp != variants.INFILTRATION or form not in forms):
            self.err(file, eid, "form", f"{brief(form)}; allowed: null, or with cause "
                                        f"{variants.INFILTRATION} one of {', '.join(forms)}")
        return quantity, item, level, of, contaminated

    def _group(self, file: str, eid: str, field: str, raw: tuple[str, ...] | None, finding: str,
               levels: tuple[str, ...]) -> tuple[str, ...] | None:
        if raw is None:
            self.err(file, eid, field, f"missing; give a level of {finding}: {', '.join(self.sc.evidence_levels(finding))}")
            return None
        out = []
        for v in raw:
            for lv in self.sc.expand(finding, v):
                if lv not in levels:
                    self.err(file, eid, field, X.not_allowed(v, self.sc.evidence_levels(finding), f"is not a level of {finding}"))
                    return None
                out.append(lv)
        return tuple(lv for lv in levels if lv in out)

    def _no_double_counting(self, file: str, entries: list[Entry]) -> None:
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

    # -- rates.yaml ------------------------------------------------------------------------------
    def rates(self, doc: Any, causes: tuple[str, ...], refs: dict) -> RateSpec | None:
        from palsy.model.file_models import rates_file

        file = "rates.yaml"
        if not self.shape(rates_file.RatesFile, doc, file, rates_file.entry_of):
            return None
        return R.parse(doc, causes, refs, lambda entry, field, msg: self.err(file, entry, field, msg), self.st)

