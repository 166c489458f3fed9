"""The models of the files read when a patient is answered, taught or read from a record: ``decision.yaml``,
``actions.yaml`` (with the trigger grammar), ``validation.yaml``, ``teaching_cases.yaml`` and
``fhir_map.yaml``.

As for the evidence, a model checks what its file says on its own; which causes, findings, levels,
references and cases exist is checked by :mod:`palsy.model.crossref` against the other files.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, PlainValidator, model_validator

from palsy.model.file_models.base import (
    Id,
    Keys,
    Number,
    OptionalKeys,
    Positive,
    Problem,
    Strict,
    Text,
    above,
    did_you_mean,
    interval,
    tagged,
)

#: The decision's actions about infiltration (:mod:`palsy.model.decision`).
DECISIONS = ("no_test", "test", "treat")
#: How urgent an action is (a CDS card's indicator: critical, warning, info).
URGENCIES = ("escalation", "workup", "care")
#: What a trigger may ask of a finding: its levels (``in``), that it is unknown, or (the LPs) one of the rest.
FINDING_CONDITIONS = ("in", "unknown", "count_below", "all_negative", "any_positive", "clean_positive",
                      "contaminated_positive", "atraumatic_after_positive", "without")
#: The conditions only the LP finding takes.
LP_CONDITIONS = FINDING_CONDITIONS[2:]
#: Where a teaching case's findings come from.
TEACHING_SOURCES = ("cases.yaml", "validation.yaml", "teaching")


# --- decision.yaml ---------------------------------------------------------------------------------

class Judged(Strict):
    """An adjustable expert judgment: its value and its reasoning."""

    value: Positive
    kind: Literal["expert_judgment"] | None = None
    reasoning: Text


class TestHarm(Strict):
    """The harm of doing one test (in units of the benefit of treating infiltration)."""

    harm: Annotated[float, PlainValidator(above(0, strict=False))]
    kind: Literal["expert_judgment"] | None = None
    reasoning: Text
    workup: Text  # how the decision's work-up sentence names this test when it is still to be done


def _workup_template(v: Any) -> str:
    """``workup_text``: a sentence with ``{tests}`` (the work-up's tests still to be done) and ``{them}``
    ('it' or 'them'), each once, and no other braces."""
    if not isinstance(v, str) or not v.strip():
        raise Problem("give the sentence (text)")
    fields = re.findall(r"{([^{}]*)}", v)
    if sorted(fields) != ["tests", "them"] or v.count("{") != 2 or v.count("}") != 2:
        raise Problem("give a sentence with {tests} and {them}, each once, and no other braces")
    return v


class Management(Strict):
    """Benefit and harm of managing another cause (so that a test's value counts every cause it changes)."""

    benefit: Positive
    harm: Positive
    kind: Literal["expert_judgment"] | None = None
    reasoning: Text


class ActionText(Strict):
    """The words shown for each decision."""

    no_test: Text
    test: Text
    treat: Text
    test_none_left: Text | None = None  # 'test' when no test the model weighs is left to do


class DecisionFile(Strict):
    """``decision.yaml``: Pauker and Kassirer's harms and benefits."""

    benefit_treat_infiltration: Judged
    harm_treat_without_infiltration: Judged
    tests: dict[str, TestHarm]
    management: dict[str, Management]
    workup_text: Annotated[str, PlainValidator(_workup_template)]
    escalation_text: Text
    action_text: ActionText
    testing_floor: Judged | None = None


# --- actions.yaml ----------------------------------------------------------------------------------

class FindingTrigger(Strict):
    """``{finding: NAME, in: [LEVEL, ...]}``, ``{finding: NAME, unknown: true}``, or for the LPs one of
    ``count_below: N``, ``all_negative``, ``any_positive``, ``clean_positive``, ``contaminated_positive``,
    ``atraumatic_after_positive`` (each ``true``) or ``without: METHOD``."""

    finding: Text
    in_: list[str | bool] | None = Field(default=None, alias="in", min_length=1)
    unknown: Literal[True] | None = None
    count_below: Annotated[int, Field(ge=1)] | None = None
    all_negative: Literal[True] | None = None
    any_positive: Literal[True] | None = None
    clean_positive: Literal[True] | None = None
    contaminated_positive: Literal[True] | None = None
    atraumatic_after_positive: Literal[True] | None = None
    without: Text | None = None

    @model_validator(mode="after")
    def _one(self) -> FindingTrigger:
        given = [k for k in FINDING_CONDITIONS if getattr(self, "in_" if k == "in" else k) is not None]
        if len(given) != 1:
            raise Problem(f"give exactly one of {', '.join(FINDING_CONDITIONS)} (given: {', '.join(given) or 'none'})")
        return self


class CauseTrigger(Strict):
    """``{cause: CAUSE, above: P}`` or ``{cause: CAUSE, below: P}`` on the mean probability."""

    cause: Text
    above: Annotated[float, PlainValidator(interval(0, 1, high_open=True))] | None = None
    below: Annotated[float, PlainValidator(interval(0, 1, high_open=True))] | None = None

    @model_validator(mode="after")
    def _one(self) -> CauseTrigger:
        if (self.above is None) == (self.below is None):
            raise Problem("give exactly one of above/below with a probability in (0, 1)")
        return self


class DecisionTrigger(Strict):
    """``{decision: [ACTION, ...]}``: the decision is one of these."""

    decision: list[Literal["no_test", "test", "treat"]] = Field(min_length=1)


class AllTrigger(Strict):
    all_: list[Trigger] = Field(alias="all", min_length=1)


class AnyTrigger(Strict):
    any_: list[Trigger] = Field(alias="any", min_length=1)


class NotTrigger(Strict):
    not_: Trigger = Field(alias="not")


def _not_a_trigger(v: Any) -> Any:
    raise Problem(f"is not a trigger{did_you_mean(v, ['always'])}; allowed: always, {{finding, ...}}, {{cause, above|below}}, "
                  "{decision: [...]}, {all: [...]}, {any: [...]}, {not: ...}")


def _trigger_kind(v: Any) -> str:
    if v == "always":
        return "always"
    if isinstance(v, dict) and len(v) > 0:
        for key in ("all", "any", "not", "finding", "cause", "decision"):
            if key in v:
                return f"trigger-{key}"
    return "trigger-none"


Trigger = Annotated[Union[  # noqa: UP007 (one member per line)
    tagged("always", Literal["always"]),
    tagged("trigger-all", AllTrigger), tagged("trigger-any", AnyTrigger), tagged("trigger-not", NotTrigger),
    tagged("trigger-finding", FindingTrigger), tagged("trigger-cause", CauseTrigger),
    tagged("trigger-decision", DecisionTrigger),
    tagged("trigger-none", Annotated[Any, PlainValidator(_not_a_trigger)]),
], Discriminator(_trigger_kind)]

AllTrigger.model_rebuild()
AnyTrigger.model_rebuild()
NotTrigger.model_rebuild()


def _one_line(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or "\n" in v.strip():
        raise Problem("give one line of text")
    return v


class ActionEntry(Strict):
    """One action: its words, its trigger, its priority on the page, its sources and why; an escalating one also
    the sign that calls for it in a few words (``sign``: the teaching handout lists the signs with the words)."""

    id: Id
    text: Annotated[str, PlainValidator(_one_line)]
    sign: Annotated[str, PlainValidator(_one_line)] | None = None
    detail: str | None = None
    when: Trigger
    priority: Number
    ref: Keys
    reasoning: Text
    urgency: Literal["escalation", "workup", "care"] = "care"

    @model_validator(mode="after")
    def _sign(self) -> ActionEntry:
        if self.urgency == "escalation" and self.sign is None:
            raise Problem("sign: missing; an escalating action needs its sign, one line saying when it applies "
                          "(the teaching handout prints it before the action's words)")
        return self


class ActionsFile(Strict):
    actions: list[ActionEntry]


# --- validation.yaml -------------------------------------------------------------------------------

class ValidationCase(Strict):
    """A published patient with an established cause, kept out of the fit and scored by ``palsy check``."""

    id: Id
    ref: Keys
    cause: Text
    how_established: Text
    findings: dict[str, Any] = {}
    partial: dict[str, Text] = {}
    where: dict[str, Text] = {}
    notes: str | None = None


class Candidate(Strict):
    """A case read and pre-coded but not scored (its citation or its cause not complete)."""

    id: Id
    cause: Text
    citation_known: Text
    missing: Text
    ref: OptionalKeys = ()
    how_established: str | None = None
    findings: dict[str, Any] = {}
    partial: dict[str, Text] = {}
    where: dict[str, Text] = {}
    notes: str | None = None


class Excluded(Strict):
    case: Text
    reason: Text


class ValidationFile(Strict):
    """``validation.yaml``: the validation split."""

    cases: list[ValidationCase]
    candidates: list[Candidate] = []
    excluded: list[Excluded] = []


# --- teaching_cases.yaml ---------------------------------------------------------------------------

class Typical(Strict):
    """The lesson's one typical patient and the negative LP it repeats."""

    id: Id
    description: Text
    findings: dict[str, Any]
    based_on: str | None = None
    negative_lp: Any
    repeats: Annotated[int, Field(ge=1, le=20)] = 3


class Prediction(Strict):
    about_the_same: Annotated[float, PlainValidator(interval(0, 1, high_open=True))] = 0.1


class TeachingCase(Strict):
    """A case to solve: from the library (``cases.yaml``), the validation split, or written for teaching."""

    id: Id
    source: Literal["cases.yaml", "validation.yaml", "teaching"]
    title: Text
    cause: Text
    established: Text
    teaching: Text
    ref: Text | None = None
    refs: list[Text] = []
    findings: dict[str, Any] | None = None
    where: dict[str, Text] | None = None
    notes: str | None = None
    constructed: str | None = None
    based_on: str | None = None

    @model_validator(mode="after")
    def _findings(self) -> TeachingCase:
        if self.source == "teaching" and self.findings is None:
            raise Problem("a teaching case gives its findings", field="findings")
        if self.source != "teaching" and self.findings is not None:
            raise Problem(f"the findings of a case from {self.source} are read from it: leave findings out",
                          field="findings")
        return self


class SessionStep(Strict):
    """One step of the session's timed plan: its minutes, what is done, on which page, and how."""

    minutes: Annotated[int, Field(ge=1, le=120)]
    activity: Text
    material: Literal["lesson", "handout", "cases", "interactive", "guide"]
    notes: Text


class Misconception(Strict):
    """A belief to expect in the room, and what answers it."""

    belief: Text
    answer: Text


class Session(Strict):
    """The session a teacher runs from the pages (the facilitator's guide): its plan's minutes add up to
    ``minutes``."""

    minutes: Annotated[int, Field(ge=5, le=240)]
    audience: Text
    objectives: Annotated[list[Text], Field(min_length=1)]
    plan: Annotated[list[SessionStep], Field(min_length=1)]
    misconceptions: list[Misconception] = []

    @model_validator(mode="after")
    def _adds_up(self) -> Session:
        total = sum(step.minutes for step in self.plan)
        if total != self.minutes:
            raise Problem(f"the plan's minutes add up to {total}, not the session's {self.minutes}", field="plan")
        return self


def _regex(v: Any) -> str:
    """A regular expression (Python's ``re``), matched against a page's visible text."""
    if not isinstance(v, str) or not v.strip():
        raise Problem("give a regular expression (text)")
    try:
        re.compile(v)
    except re.error as exc:
        raise Problem(f"not a regular expression: {exc}") from None
    return v


class GlossaryEntry(Strict):
    """A word learners meet, how a page's text is searched for it, and its plain meaning (``ref``: the source of
    a clinical rule the meaning states)."""

    term: Text
    pattern: Annotated[str, PlainValidator(_regex)]
    meaning: Text
    ref: Text | None = None


class TeachingFile(Strict):
    """``teaching_cases.yaml``."""

    typical: Typical
    prediction: Prediction = Prediction()
    session: Session | None = None
    glossary: list[GlossaryEntry] = []
    cases: list[TeachingCase]


# --- fhir_map.yaml ---------------------------------------------------------------------------------

class FhirWindow(Strict):
    """A window or limit with its source; an exposure's window (named by its rows) gives its unit too."""

    value: Number
    unit: Literal["days", "months"] | None = None
    source: Text


class Local(Strict):
    finding_system: Text
    level_system: Text
    code_system: Text
    source: str | None = None


class Windows(Strict):
    """The time windows and limits the mapping reads a record with (each with its source): these four,
    and the window of each exposure, named by its rows (checked by :func:`palsy.model.crossref.fhir_map_file`)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, FhirWindow] = Field(init=False)

    adult_from_years: FhirWindow
    pleocytosis_above_per_uL: FhirWindow
    traumatic_red_cells_at_least_per_uL: FhirWindow
    blasts_days_from_lp: FhirWindow


def _code(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
        raise Problem("give the code (text)")
    return str(v)


def _level(v: Any) -> str:
    if isinstance(v, bool):
        raise Problem(f"an unquoted yes or no (YAML reads it as {str(v).lower()}); quote it: \"yes\" or \"no\"")
    if not isinstance(v, str) or not v.strip():
        raise Problem("give the level (text)")
    return v


#: A level a row sets (unquoted yes/no refused with a hint: the schema's levels are the words).
Level = Annotated[str, PlainValidator(_level)]


class CodeRow(Strict):
    """One code of a standard system and what it says in palsy's schema."""

    system: Text
    code: Annotated[str, PlainValidator(_code)]
    display: Text
    role: Literal["palsy", "finding", "medication", "procedure", "lab", "result", "laterality", "imaging"]
    source: Text
    finding: Text | None = None
    level: Level | None = None
    absent_level: Level | None = None
    measure: Literal["csf_wbc", "csf_protein", "csf_rbc", "csf_cytology", "csf_flow", "csf_blasts", "blood_blasts"] | None = None
    result: Text | None = None
    side: Literal["left", "right", "both"] | None = None
    modality: Literal["MRI", "CT"] | None = None
    window: Text | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _by_role(self) -> CodeRow:
        need = {"finding": ("finding",), "lab": ("measure",), "result": ("result",), "laterality": ("side",),
                "imaging": ("modality",), "medication": ("finding", "level", "window"),
                "procedure": ("finding", "level", "window")}
        for field in need.get(self.role, ()):
            if getattr(self, field) is None:
                raise Problem(f"a {self.role} row names its {field}", field=field)
        if self.role == "imaging" and self.level is None:
            raise Problem("an imaging row names the level it reads", field="level")
        return self


class ZeroReadNegative(Strict):
    """The table's rule for a number: a CSF result of one of ``measures`` given as exactly 0 beside an
    interpretation the table reads negative is negative (:func:`palsy.model.fhir._zero_reading`)."""

    measures: Annotated[list[Literal["csf_cytology", "csf_flow"]], Field(min_length=1)]
    source: Text


class FhirMapFile(Strict):
    """``fhir_map.yaml``: codes of standard systems mapped to the schema's findings and levels."""

    version: Annotated[int, Field(ge=1)]
    local: Local
    windows: Windows
    zero_read_negative: ZeroReadNegative | None = None
    examples: dict[str, Any] = {}
    codes: list[CodeRow]


__all__ = ["ActionEntry", "ActionsFile", "CodeRow", "DECISIONS", "DecisionFile", "FINDING_CONDITIONS", "FhirMapFile",
           "FindingTrigger", "LP_CONDITIONS", "TEACHING_SOURCES", "TeachingFile", "Trigger", "URGENCIES",
           "ValidationFile", "ZeroReadNegative"]
