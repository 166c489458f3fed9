"""The model of ``schema.yaml``: findings, their levels, roles, trees and labels, and the next tests.

The rules within the file (a tree splits its levels into one path each, context findings come first, one
LP finding, ...) are validators here; every other file is read against the schema this file declares.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import Field, field_validator, model_validator

from palsy.model.file_models.base import Strict, problems, where

# --- schema.yaml ------------------------------------------------------------------------------------

class LevelSpec(Strict):
    label: str = Field(min_length=1)
    short: str | None = None
    scope_note: str | None = None


class PatientOnlyLevel(Strict):
    label: str = Field(min_length=1)
    answered_as: str
    scope_note: str | None = None


class Node(Strict):
    success: list[str] = Field(min_length=1)
    of: list[str] | None = None


class ContaminationSpec(Strict):
    finding: str
    level: str


class FindingSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    role: str
    label: str = Field(min_length=1)
    help: str = Field(min_length=1)
    levels: dict[str, LevelSpec] | None = None
    partial: dict[str, list[str]] | None = None
    patient_only: dict[str, PatientOnlyLevel] | None = None
    tree: list[Node] | None = None
    # the LPs only
    methods: dict[str, LevelSpec] | None = None
    results: dict[str, LevelSpec] | None = None
    traumatic: dict[str, LevelSpec] | None = None
    max_lps: int | None = Field(default=None, ge=1, le=20)
    contamination: ContaminationSpec | None = None

    @field_validator("levels", "methods", "results", "traumatic", mode="before")
    @classmethod
    def _yes_no_keys(cls, v: Any) -> Any:
        # unquoted yes/no keys arrive as booleans: read back as the words written
        return {("yes" if k else "no") if isinstance(k, bool) else k: x for k, x in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _rules(self) -> FindingSpec:
        from palsy.model.schema import ROLES

        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} is not allowed; allowed: {', '.join(ROLES)}")
        if self.role == "lp":
            missing = [k for k in ("methods", "results", "traumatic", "max_lps", "contamination") if getattr(self, k) is None]
            if missing or self.levels or self.tree:
                raise ValueError(f"an lp finding takes methods, results, traumatic and max_lps (not levels or tree); "
                                 f"missing: {', '.join(missing) or 'none'}")
            if list(self.results or {}) != ["negative", "positive"] or list(self.traumatic or {}) != ["no", "yes"]:
                raise ValueError("lp results must be [negative, positive] and traumatic [no, yes], in that order")
            if len(self.methods or {}) != 2:
                raise ValueError("the CSF model reads two methods per LP (the second the more sensitive)")
            return self
        if not self.levels or len(self.levels) < 2:
            raise ValueError("give at least two levels")
        levels = list(self.levels)
        for name, group in (self.partial or {}).items():
            if name in levels or not set(group) <= set(levels) or len(group) < 2:
                raise ValueError(f"partial level {name!r}: give a new name for two or more of {levels}")
        for name, extra in (self.patient_only or {}).items():
            if name in levels or extra.answered_as not in levels:
                raise ValueError(f"patient_only level {name!r}: a new name answered as one of {levels}")
        if self.tree is not None:
            if self.role not in ("presentation", "imaging", "lp_profile"):
                raise ValueError(f"only presentation, imaging and lp_profile findings take a tree, not {self.role}")
            _check_tree(levels, self.tree)
        elif self.role in ("presentation", "imaging", "lp_profile") and len(levels) != 2:
            raise ValueError("a finding with more than two levels needs its tree")
        return self


def _check_tree(levels: list[str], tree: list[Node]) -> None:
    """Each node splits a set of levels; together the nodes give every level one path (a full binary tree)."""
    for n in tree:
        of = n.of or levels
        if not set(n.success) < set(of) or not set(of) <= set(levels):
            raise ValueError(f"tree node {n.success} of {of}: success must be a proper part of `of`, "
                             f"`of` a set of levels {levels}")
    # the sets split must form a full binary tree rooted at all levels
    splits = {frozenset(n.of or levels): (frozenset(n.success), frozenset(n.of or levels) - frozenset(n.success))
              for n in tree}
    if len(splits) != len(tree) or len(tree) != len(levels) - 1:
        raise ValueError(f"a tree over {len(levels)} levels has {len(levels) - 1} nodes, each splitting a distinct set")
    todo, seen = [frozenset(levels)], set()
    while todo:
        s = todo.pop()
        if len(s) == 1:
            seen |= s
            continue
        if s not in splits:
            raise ValueError(f"no node splits {sorted(s)}: every set of two or more levels reached must be split")
        todo += list(splits[s])
    if seen != set(levels):
        raise ValueError("the tree does not reach every level")


class NextTestSpec(Strict):
    label: str = Field(min_length=1)
    reads: str
    methods: list[str] | None = None


class SchemaFile(Strict):
    schema_version: int = Field(ge=3)
    findings: list[FindingSpec] = Field(min_length=2)
    next_tests: dict[str, NextTestSpec]

    @model_validator(mode="after")
    def _rules(self) -> SchemaFile:
        names = [f.name for f in self.findings]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate finding names: {', '.join(dup)}")
        roles = [f.role for f in self.findings]
        for role in ("lp", "lp_profile"):
            if roles.count(role) != 1:
                raise ValueError(f"give exactly one finding with role {role}")
        if "context" not in roles:
            raise ValueError("give at least one context finding")
        first_other = next(i for i, r in enumerate(roles) if r != "context")
        if any(r == "context" for r in roles[first_other:]):
            raise ValueError("context findings come first (they are the rate model's strata, in this order)")
        lp = self.findings[roles.index("lp")]
        c = lp.contamination
        source = next((f for f in self.findings if c is not None and f.name == c.finding), None)
        if source is None or source.role != "context" or c.level not in (source.levels or {}):
            raise ValueError(f"{lp.name}.contamination: give a context finding and its level that says blasts circulate")
        for name, t in self.next_tests.items():
            target = next((f for f in self.findings if f.name == t.reads), None)
            if target is None or target.role not in ("lp", "imaging"):
                raise ValueError(f"next test {name!r} reads {t.reads!r}: give an lp or imaging finding")
            if target.role == "lp" and not (t.methods and set(t.methods) <= set(lp.methods or {})):
                raise ValueError(f"next test {name!r}: give its methods, some of {list(lp.methods or {})}")
        return self


def validate_schema(doc: Any, file: str) -> list[str]:
    """Every problem of a ``schema.yaml`` document (empty when valid)."""
    try:
        SchemaFile.model_validate(doc)
    except pydantic.ValidationError as exc:
        names = doc.get("findings") if isinstance(doc, dict) else None

        def entry_of(loc: tuple[Any, ...]) -> str:
            if len(loc) >= 2 and loc[0] == "findings" and isinstance(loc[1], int) and isinstance(names, list) \
                    and loc[1] < len(names) and isinstance(names[loc[1]], dict):
                return str(names[loc[1]].get("name", f"#{loc[1] + 1}"))
            return where(loc[:1]) if loc else "-"

        return problems(exc, file, SchemaFile, lambda loc: (entry_of(loc), loc))
    return []
