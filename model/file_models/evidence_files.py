"""The models of the evidence the fit reads besides the schema and the rates: ``references.yaml``,
``model.yaml``, ``cases.yaml`` and ``cohorts.yaml``.

Each model checks what one file can say on its own: keys, types, ranges and the rules between fields of
one entry (``x`` at most ``n``; an expert judgment has its Beta and its reasoning). What a value means in
another file (a finding of the schema, a cause of ``model.yaml``, a key of ``references.yaml``) is
checked by :mod:`palsy.model.evidence` and :mod:`palsy.model.crossref`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, RootModel, field_validator, model_validator

from palsy.model.file_models.base import (
    Beta,
    Distinct,
    Id,
    Ids,
    Keys,
    Levels,
    Number,
    Positive,
    Problem,
    Strict,
    Text,
    Weight,
    interval,
    yes_no,
)

#: When the palsy started relative to the leukaemia's diagnosis (cases.yaml ``phase``).
PHASES = ("after_diagnosis", "at_diagnosis", "unknown")
#: Entry kinds of cohorts.yaml.
KINDS = ("counts", "expert_judgment")


# --- references.yaml -------------------------------------------------------------------------------

def _identifier(v: Any) -> Any:
    if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int))):
        raise Problem("give the identifier as text (or null where unknown)")
    return v


def _year(v: Any) -> int | str:
    if (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v.strip()):
        return v
    raise Problem("give the year (a number, or text as read)")


Identifier = Annotated[str | int | None, PlainValidator(_identifier)]


class Reference(Strict):
    """One citation. ``doi`` and ``pmid`` are both given, ``null`` where unknown (``no_id`` says why a source
    has neither); ``verified`` says what was read."""

    authors: Text
    title: Text
    journal: str | None = None
    year: Annotated[int | str, PlainValidator(_year)]
    volume: str | int | None = None
    pages: str | int | None = None
    doi: Identifier = None
    pmid: Identifier = None
    url: str | None = None
    verified: str | None = None
    no_id: str | None = None

    @model_validator(mode="after")
    def _doi_or_pmid(self) -> Reference:
        if not {"doi", "pmid"} & self.model_fields_set:
            raise Problem("give doi and/or pmid (null where unknown)", field="doi")
        return self


class ReferencesFile(RootModel[dict[str, Reference]]):
    """``references.yaml``: citation key -> reference."""


# --- model.yaml ------------------------------------------------------------------------------------

class CauseLabel(Strict):
    label: Text
    short: Text | None = None


class RandomEffects(Strict):
    tau_sigma: Positive


class SelectionNode(Strict):
    finding: Text
    level: Levels


class Normal(Strict):
    mu: Number
    sigma: Positive


class Selection(Strict):
    nodes: list[SelectionNode] = Field(min_length=1)
    gamma_prior: Normal


class Synthesis(Strict):
    random_effects: RandomEffects
    selection: Selection


class VariantComparison(Strict):
    differ_by: Annotated[float, PlainValidator(interval(0, 1, high_open=True))]


class Atypicality(Strict):
    tail: Annotated[float, PlainValidator(interval(0, 0.5, high_open=True))]


class Hallmark(Strict):
    finding: Text
    value: Annotated[str, PlainValidator(lambda v: _level(yes_no(v)))]


def _level(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise Problem("give a level (text)")
    return v


class ModelFile(Strict):
    """``model.yaml``: the causes, the forms of infiltration, the synthesis settings, what the answer says
    out of scope and what is not modelled."""

    causes: Annotated[list[Text], Distinct] = Field(min_length=2)
    cause_labels: dict[str, CauseLabel]
    base_prior: Beta
    w_case: Weight
    unknown_csf_method: Text
    forms: Annotated[list[Text], Distinct] = Field(min_length=2)
    form_prior: dict[str, Positive] | dict[str, dict[str, Positive]]
    synthesis: Synthesis
    variants: VariantComparison
    atypicality: Atypicality
    hallmarks: dict[str, list[Hallmark] | None]
    scope: dict[str, Text]
    not_modelled: list[Text] = Field(min_length=1)
    reasoning: dict[str, Text] = {}
    #: ``required``: every free node parameter of every cause has evidence (an error otherwise);
    #: ``partial``: a node without evidence keeps the base prior (a small evidence set for tests).
    node_coverage: Literal["required", "partial"] = "required"

    @field_validator("form_prior", mode="wrap")
    @classmethod
    def _form_prior(cls, v: Any, handler: Any) -> Any:
        # one error in palsy's words rather than one per member of the union
        try:
            return handler(v)
        except Exception:
            raise Problem("give a positive concentration for each form, or such a mapping for each lineage") from None


# --- cases.yaml ------------------------------------------------------------------------------------

class CaseEntry(Strict):
    """One published case of leukaemic infiltration."""

    id: Id
    also_known_as: Ids | None = None
    ref: Keys
    phase: Literal["after_diagnosis", "at_diagnosis", "unknown"] = "unknown"
    form: str | None = None
    findings: dict[str, Any]
    proven_by: list[Text] = Field(min_length=1)
    where: dict[str, Any] | str | None = None
    confidence: str | None = None
    notes: str | None = None

    @field_validator("proven_by", mode="before")
    @classmethod
    def _proven(cls, v: Any) -> Any:
        if v == [] or v is None:
            raise Problem("give the list of findings or tests that established infiltration")
        return v


class CasesFile(Strict):
    cases: list[CaseEntry]


# --- cohorts.yaml ----------------------------------------------------------------------------------

class CohortEntry(Strict):
    """A cohort count (``kind: counts``) or an expert-judgment Beta for one node of one cause."""

    id: Id
    kind: Literal["counts", "expert_judgment"] = "counts"
    ref: Keys | None = None
    finding: Text
    cause: str | None = None
    form: str | None = None
    method: str | None = None
    given: str | None = None
    level: Levels | None = None
    of: Levels | None = None
    lp_node: str | None = None
    context: dict[str, Any] | None = None
    x: Number | None = None
    n: Number | None = None
    weight: Number | None = None
    weight_reason: str | None = None
    population: str | None = None
    where: str | None = None
    confidence: str | None = None
    tabulates_cases: Ids | None = None
    beta: Beta | None = None
    reasoning: str | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _kind(self) -> CohortEntry:
        if self.kind == "expert_judgment":
            if self.beta is None:
                raise Problem("give {a: > 0, b: > 0}", field="beta", value=None)
            if not (self.reasoning or "").strip():
                raise Problem("expert judgment needs its reasoning", field="reasoning")
            return self
        if not self.ref:
            raise Problem("missing; give a key of references.yaml", field="ref")
        # counts of patients: whole, and within what a study has (an attacker's review, s16: x: 5.5 and n: 1e30
        # passed); a weight too small to matter removes the entry without saying so
        if self.n is None or self.n <= 0 or self.n != int(self.n) or self.n > MAX_PATIENTS:
            raise Problem(f"must be a whole number of patients from 1 to {MAX_PATIENTS:,}", field="n", value=self.n)
        if self.x is None or self.x < 0 or self.x != int(self.x):
            raise Problem("must be a whole number of patients >= 0", field="x", value=self.x)
        if self.x > self.n:
            raise Problem(f"is larger than n = {self.n:g}", field="x", value=self.x)
        if self.weight is None or not MIN_WEIGHT <= self.weight <= 1:
            raise Problem(f"is not in [{MIN_WEIGHT:g}, 1] (a smaller weight is no evidence: remove the entry)",
                          field="weight", value=self.weight)
        if not (self.weight_reason or "").strip():
            raise Problem("say why this weight", field="weight_reason")
        return self


#: The largest study a count may come from (national registries are smaller), and the smallest weight an entry may
#: have.
MAX_PATIENTS, MIN_WEIGHT = 10_000_000, 0.01


class CohortsFile(Strict):
    entries: list[CohortEntry]
