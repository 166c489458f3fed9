"""The finding schema (docs/design.md §2), read from ``schema.yaml`` beside the evidence.

This module owns the schema: every finding's name, role, levels, partly known levels, tree of
conditional Betas and labels, and the tests the answer looks ahead to. Everything else derives from a
:class:`Schema`: the patient parser (:mod:`palsy.model.findings`), the model's items, nodes and strata
(:mod:`palsy.model.structure`), the command line's flags, the JSON, the reports' labels and the page's
calculator. A schema travels with the posterior it was fitted with (``draws.npz`` keeps its document),
so the warm answer path reads no YAML for it and never imports the validation library.

Validation (:func:`validate`) is by pydantic models with unknown keys refused (with a did-you-mean)
and the cross-field rules as validators; :func:`from_doc` trusts a document already validated.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

FILE = "schema.yaml"
UNKNOWN = "unknown"
ROLES = ("context", "scope", "presentation", "lp", "lp_profile", "imaging")
TREE_ROLES = ("presentation", "imaging")  # findings modelled as one tree each (the LP and its profile apart)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One finding of the schema (see ``priors/schema.yaml`` for the meaning of each field)."""

    name: str
    role: str
    levels: tuple[str, ...]
    label: str
    help: str
    level_labels: dict[str, str]
    short_labels: dict[str, str]
    partial: dict[str, tuple[str, ...]]
    patient_only: dict[str, dict[str, str]]  # level -> {label, answered_as, scope_note}
    scope_notes: dict[str, str]  # level -> key of model.yaml's scope notes
    tree: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (success, of) per node

    @property
    def yes_no(self) -> bool:
        """Levels ``no``/``yes``: YAML reads them unquoted as booleans, accepted back here only."""
        return self.levels == ("no", "yes")

    @property
    def allowed(self) -> tuple[str, ...]:
        """The levels a patient may give (besides ``unknown``)."""
        return self.levels + tuple(self.patient_only)


@dataclasses.dataclass(frozen=True)
class LPSpec:
    """The lumbar punctures: methods, results, traumatic levels and how many at most."""

    name: str
    methods: tuple[str, ...]
    results: tuple[str, ...]
    traumatic: tuple[str, ...]
    max_lps: int
    label: str
    help: str
    method_labels: dict[str, str]
    result_labels: dict[str, str]
    traumatic_labels: dict[str, str]
    contamination: tuple[str, str]  # (context finding, level): blasts circulate


@dataclasses.dataclass(frozen=True)
class NextTest:
    """A test whose value the answer looks ahead to."""

    name: str
    label: str
    reads: str
    methods: tuple[str, ...] = ()


class Schema:
    """The finding schema of one evidence folder (immutable; compare by :attr:`hash`)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.version = int(doc["schema_version"])
        found: dict[str, Finding] = {}
        lp = None
        for f in doc["findings"]:
            if f["role"] == "lp":
                lp = LPSpec(f["name"], tuple(f["methods"]), tuple(f["results"]), tuple(f["traumatic"]),
                            int(f["max_lps"]), f["label"], f["help"],
                            {k: v["label"] for k, v in f["methods"].items()},
                            {k: v["label"] for k, v in f["results"].items()},
                            {k: v["label"] for k, v in f["traumatic"].items()},
                            (f["contamination"]["finding"], f["contamination"]["level"]))
                continue
            levels = tuple(str(k) for k in f["levels"])
            tree = tuple((tuple(n["success"]), tuple(n.get("of") or levels)) for n in (f.get("tree") or ()))
            if not tree and f["role"] in TREE_ROLES + ("lp_profile",):
                tree = (((levels[1],), levels),)  # two levels: one node, P(second level)
            found[f["name"]] = Finding(
                name=f["name"], role=f["role"], levels=levels, label=f["label"], help=f["help"],
                level_labels={str(k): v["label"] for k, v in f["levels"].items()},
                short_labels={str(k): v.get("short", v["label"]) for k, v in f["levels"].items()},
                partial={k: tuple(v) for k, v in (f.get("partial") or {}).items()},
                patient_only={k: dict(v) for k, v in (f.get("patient_only") or {}).items()},
                scope_notes={str(k): v["scope_note"] for k, v in f["levels"].items() if v.get("scope_note")},
                tree=tree)
        if lp is None:
            raise ValueError("schema: no finding with role lp")
        self.lp = lp
        self.by_name = found
        #: Every finding in clinical order (the LPs by their name, e.g. ``csf``).
        self.findings: tuple[str, ...] = tuple(f["name"] for f in doc["findings"])
        #: The categorical findings (every finding but the LPs).
        self.categorical: tuple[str, ...] = tuple(n for n in self.findings if n != lp.name)
        self.context: tuple[str, ...] = tuple(n for n in self.categorical if found[n].role == "context")
        self.tree_findings: tuple[str, ...] = tuple(n for n in self.categorical if found[n].role in TREE_ROLES)
        self.profile: str = next(n for n in self.categorical if found[n].role == "lp_profile")
        self.scope: tuple[str, ...] = tuple(n for n in self.categorical if found[n].role == "scope")
        self.levels: dict[str, tuple[str, ...]] = {n: found[n].levels for n in self.categorical}
        self.partial: dict[str, dict[str, tuple[str, ...]]] = {n: found[n].partial for n in self.categorical
                                                              if found[n].partial}
        self.next_tests: dict[str, NextTest] = {
            k: NextTest(k, v["label"], v["reads"], tuple(v.get("methods") or ())) for k, v in doc["next_tests"].items()}
        self.hash = hashlib.sha256(json.dumps(doc).encode()).hexdigest()  # key order is meaning (level order)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and other.hash == self.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return f"Schema(version={self.version}, findings={len(self.findings)}, hash={self.hash[:12]})"

    # -- levels ------------------------------------------------------------------------------------
    def allowed(self, finding: str) -> tuple[str, ...]:
        """Levels a patient may give for ``finding`` (besides ``unknown``)."""
        return self.by_name[finding].allowed

    def expand(self, finding: str, value: str) -> tuple[str, ...]:
        """The levels a (possibly partly known) value stands for."""
        partial = self.partial.get(finding, {})
        return partial[value] if value in partial else (value,)

    def evidence_levels(self, finding: str) -> tuple[str, ...]:
        """Levels and partly known levels that evidence (not patients) may use."""
        return self.levels[finding] + tuple(self.partial.get(finding, {}))

    def as_level(self, finding: str, raw: Any) -> Any:
        """YAML's unquoted yes/no booleans back as ``yes``/``no`` for the yes/no findings only."""
        f = self.by_name.get(finding)
        if f is not None and f.yes_no and isinstance(raw, bool):
            return "yes" if raw else "no"
        return raw

    def answered_as(self, finding: str, value: str | None) -> str | None:
        """The level used for computation (a patient-only level is answered as its stand-in)."""
        if value is None:
            return None
        extra = self.by_name[finding].patient_only.get(value) if finding in self.by_name else None
        return extra["answered_as"] if extra else value

    def scope_note(self, finding: str, value: str | None) -> str | None:
        """The key of model.yaml's scope note a level raises (out of the population), if any."""
        if value is None or finding not in self.by_name:
            return None
        f = self.by_name[finding]
        if value in f.patient_only:
            return f.patient_only[value].get("scope_note")
        return f.scope_notes.get(value)

    # -- labels ------------------------------------------------------------------------------------
    def label(self, finding: str) -> str:
        """A finding's name on the page ('Side of the facial palsy')."""
        return self.lp.label if finding == self.lp.name else self.by_name[finding].label

    def help(self, finding: str) -> str:
        """One line for the command line and the calculator."""
        return self.lp.help if finding == self.lp.name else self.by_name[finding].help

    def level_label(self, finding: str, level: str) -> str:
        """A level in words ('both sides')."""
        f = self.by_name[finding]
        if level in f.patient_only:
            return f.patient_only[level]["label"]
        return f.level_labels.get(level, level.replace("_", " "))

    def short_label(self, finding: str, level: str) -> str:
        """A short label for a figure axis ('bilateral palsy')."""
        f = self.by_name[finding]
        return f.short_labels.get(level, level.replace("_", " "))

    def to_json(self) -> str:
        """The document, as stored with the draws (key order kept: it is the order of the levels)."""
        return json.dumps(self.doc)


def from_doc(doc: dict[str, Any]) -> Schema:
    """A :class:`Schema` from a validated document (no validation: see :func:`validate`)."""
    return from_json(json.dumps(doc))


@functools.lru_cache(maxsize=8)
def from_json(text: str) -> Schema:
    """A :class:`Schema` from a validated document's JSON (as the draws keep it); one per text."""
    return Schema(json.loads(text))


def load(directory: str | Path | None = None) -> Schema:
    """The validated schema of an evidence folder (default: the one shipped with palsy).

    Raises
    ------
    palsy.model.evidence.EvidenceError
        Naming the file, the entry and the field of every problem.
    """
    from palsy.model import paths
    from palsy.model import safe_yaml as Y

    path = (paths.priors() if directory is None else Path(directory)) / FILE
    try:
        doc = Y.load(path)
    except Y.YAMLInputError as exc:
        from palsy.model.evidence import EvidenceError

        raise EvidenceError([str(exc)]) from None
    problems = validate(doc, path)
    if problems:
        from palsy.model.evidence import EvidenceError

        raise EvidenceError(problems)
    return from_doc(doc)


@functools.cache
def default() -> Schema:
    """The schema shipped with palsy (``priors/schema.yaml``)."""
    return read()


@functools.lru_cache(maxsize=8)
def read(directory: str | Path | None = None) -> Schema:
    """The schema of an evidence folder for a query: read without the validation library when it builds
    (the fit validated it; the warm answer path stays light), validated with every problem named when it
    does not (:func:`load`)."""
    from palsy.model import paths
    from palsy.model import safe_yaml as Y

    folder = paths.priors() if directory is None else Path(directory)
    try:
        return from_doc(Y.load(folder / FILE))
    except Exception:  # a broken file: the validating loader names the file, the entry and the field
        return load(folder)


def validate(doc: Any, path: str | Path) -> list[str]:
    """Every problem of a schema document, each naming the file, the finding and the field."""
    from palsy.model import file_models

    return file_models.validate_schema(doc, str(path))
