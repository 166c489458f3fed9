"""The published JSON Schemas: a patient file, and the answer of ``palsy posterior --json``.

Both derive from the finding schema (``priors/schema.yaml``), so that they cannot disagree with it:

- :func:`patient_schema` accepts exactly the documents :func:`palsy.model.findings.parse_patient` accepts
  (its findings, their levels and ``unknown`` in any case with surrounding white space, YAML's yes/no
  booleans for the yes/no findings, the LP forms of version 3 and version 2, at most ``max_lps`` LPs,
  nothing else). The parser stays the reader (it is fast and names every problem); a test proves the two
  accept and refuse the same documents.
- :func:`answer_model` is the pydantic model of :meth:`palsy.model.answer.Answer.to_dict` (with the
  ``fhir`` block ``--fhir`` adds); :func:`answer_schema` its JSON Schema. The answer's ``patient`` is the
  patient as the answer read it (every finding, unknown ones as ``unknown``).

Each carries ``schema_version`` (the finding schema's version): a consumer checks it before reading.
``python -m palsy.scripts.json_schemas`` writes them to ``docs/schemas/``.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from palsy.model import schema as SC

DRAFT = "https://json-schema.org/draft/2020-12/schema"


# --- the patient file ------------------------------------------------------------------------------

@functools.cache
def _code_points() -> tuple[tuple[int, ...], dict[str, tuple[str, ...]]]:
    """The white space ``str.strip()`` removes, and for each lower-case letter the characters whose
    ``str.lower()`` it is (one pass over Unicode; the parser reads ``unknown`` with both)."""
    white, lower = [], {}
    for c in range(sys.maxunicode + 1):
        ch = chr(c)
        if ch.isspace():
            white.append(c)
        low = ch.lower()
        if len(low) == 1 and low != ch:
            lower.setdefault(low, []).append(ch)
    return tuple(white), {k: tuple(v) for k, v in lower.items()}


def _escape(c: int) -> str:
    assert c <= 0xFFFF, "a character beyond the Basic Multilingual Plane"
    return f"\\u{c:04x}"


@functools.cache
def _white() -> str:
    """A regex class body of the characters Python's ``str.strip()`` removes (the parser strips with it)."""
    chars = _code_points()[0]
    runs, start = [], chars[0]
    for prev, cur in itertools.pairwise([*chars, -2]):
        if cur != prev + 1:
            runs.append((start, prev))
            start = cur
    return "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in runs)


@functools.cache
def _caseless(word: str) -> str:
    """A regex of ``word`` in any case, as ``str.lower()`` reads it (the Kelvin sign is a k)."""
    upper = _code_points()[1]
    return "".join("[" + "".join(_escape(ord(c)) for c in sorted({ch, *upper.get(ch, ())})) + "]" for ch in word)


def _word(w: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]+", w):
        return "".join(c if c.isalnum() or c == "_" else _escape(ord(c)) for c in w)
    return w


def _any(words: tuple[str, ...] | list[str]) -> str:
    return "(?:" + "|".join(_word(w) for w in words) + ")"


def unknown_pattern() -> str:
    """``unknown`` as the parser reads it: any case, white space around it."""
    w = f"[{_white()}]*"
    return f"^{w}{_caseless(SC.UNKNOWN)}{w}$"


def _lp_text_patterns(sc: SC.Schema) -> list[str]:
    """The LP written as text: ``cytology=negative,flow=positive,traumatic=no`` (keys in any order, each once,
    at least one method read) or version 2's ``result=...,method=...`` and ``negative:flow``."""
    lp, w = sc.lp, f"[{_white()}]*"
    unknown = _caseless(SC.UNKNOWN)
    read = _any(lp.results)
    trauma = f"(?:{_any(lp.traumatic)}|{unknown})"

    def pairs(seq: list[tuple[str, str]]) -> str:
        return "^" + ",".join(f"{w}{_word(k)}{w}={w}{v}{w}" for k, v in seq) + "$"

    out = []
    keys = (*lp.methods, "traumatic")
    for n in range(1, len(keys) + 1):
        for order in itertools.permutations(keys, n):
            methods = [k for k in order if k in lp.methods]
            if not methods:
                continue
            for real in itertools.product((True, False), repeat=len(methods)):
                if not any(real):
                    continue
                given = dict(zip(methods, real, strict=True))
                out.append(pairs([(k, trauma if k == "traumatic" else read if given[k] else unknown) for k in order]))
    for order in [*itertools.permutations(("result", "method")), *itertools.permutations(("result", "method", "traumatic"))]:
        values = {"result": read, "method": _any(lp.methods), "traumatic": trauma}
        out.append(pairs([(k, values[k]) for k in order]))
    out.append(f"^{w}{read}{w}:{w}{_any(lp.methods)}{w}$")
    return out


def _level_schema(sc: SC.Schema, name: str) -> dict[str, Any]:
    levels: list[Any] = list(sc.allowed(name))
    if sc.by_name[name].yes_no:
        levels += [True, False]  # YAML reads an unquoted yes/no as a boolean: read back as the level
    return {"title": sc.label(name), "description": f"{sc.help(name)}; unknown or absent: marginalised",
            "anyOf": [{"type": "null"}, {"type": "string", "pattern": unknown_pattern()}, {"enum": levels}]}


def _lp_schema(sc: SC.Schema) -> dict[str, Any]:
    lp = sc.lp
    unknown = {"anyOf": [{"type": "null"}, {"type": "string", "pattern": unknown_pattern()}]}
    result = {"anyOf": [*unknown["anyOf"], {"enum": list(lp.results)}]}
    traumatic = {"anyOf": [*unknown["anyOf"], {"enum": list(lp.traumatic)}, {"type": "boolean"}]}
    v3 = {"type": "object", "title": "an LP (version 3)",
          "properties": {**{m: result for m in lp.methods}, "traumatic": traumatic},
          "additionalProperties": False,
          "anyOf": [{"required": [m], "properties": {m: {"enum": list(lp.results)}}} for m in lp.methods]}
    v2 = {"type": "object", "title": "an LP read by one method (version 2)",
          "properties": {"result": {"enum": list(lp.results)}, "method": {"enum": list(lp.methods)},
                         "traumatic": traumatic},
          "required": ["result", "method"], "additionalProperties": False}
    text = {"type": "string", "title": "an LP as text (the command line's form)",
            "anyOf": [{"pattern": p} for p in _lp_text_patterns(sc)]}
    return {"title": sc.label(lp.name), "description": f"{sc.help(lp.name)}; unknown or absent: no LP",
            "anyOf": [*unknown["anyOf"], {"type": "array", "maxItems": lp.max_lps, "items": {"anyOf": [v3, v2, text]}}]}


def patient_schema(sc: SC.Schema | None = None) -> dict[str, Any]:
    """The JSON Schema of a patient file (a document :func:`palsy.model.findings.parse_patient` accepts)."""
    sc = sc or SC.default()
    props: dict[str, Any] = {"id": {"type": ["string", "null"], "description": "the patient's id"},
                             "description": {"type": ["string", "null"], "description": "one line about the patient"}}
    for name in sc.findings:
        props[name] = _lp_schema(sc) if name == sc.lp.name else _level_schema(sc, name)
    return {"$schema": DRAFT, "$id": f"urn:palsy:schema:patient:{sc.version}", "title": "palsy patient file",
            "description": "A patient's findings (docs/design.md §2). Unknown is never negative: a finding absent, "
                           "null or unknown is marginalised. Besides the findings only id and description.",
            "schema_version": sc.version, "type": "object", "properties": props, "additionalProperties": False}


# --- the answer --------------------------------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Summary(_Out):
    """Mean, median and equal-tailed credible interval over the posterior draws."""

    mean: float
    median: float
    lower: float
    upper: float


class ProbabilitySummary(Summary):
    ci: float = Field(description="the interval's mass")


class Interval(_Out):
    mean: float
    lower: float
    upper: float


class CauseSummary(_Out):
    cause: str
    probability: Summary
    prior_probability: Summary


class LogOdds(_Out):
    class Point(_Out):
        mean: float
        median: float

    prior: Point
    posterior: Point


class Contribution(_Out):
    """How one finding (or one LP, ``index`` from 1) moves the log odds of infiltration."""

    finding: str
    index: int | None
    value: str | None
    log_lr: Summary
    factor_geometric_mean: float
    factor_median: float


class ShapleyMethod(_Out):
    method: Literal["exact", "sampled", "not computed"]
    coalitions: int | None = None
    permutation_pairs: int | None = None
    mc_error: float | None = None


class Step(_Out):
    finding: str
    index: int | None
    value: str | None
    causes: dict[str, float]


class Outcome(_Out):
    result: str
    probability: Interval
    probability_after: Summary
    leading_cause_after: str
    tied_after: list[str]
    causes_after: dict[str, float]


class NextTest(_Out):
    test: str
    outcomes: list[Outcome]


class Atypical(_Out):
    flag: bool
    tail_probability: float
    threshold: float
    mc_error: float
    within_mc_error: bool


class Thresholds(_Out):
    low: float
    high: float
    treatment: float
    source: str
    floored: bool = Field(description="Whether the lower threshold is decision.yaml's testing floor (the one-step "
                                      "model's own was higher)")


class DecisionTest(_Out):
    test: str
    can_change_action: bool
    probability_of_change: float
    value_of_information: float
    value_for_infiltration: float
    value_for_other_causes: float
    sensitivity: float
    false_positive_rate: float
    testing_threshold: float
    test_treatment_threshold: float


class AtThreshold(_Out):
    threshold: Literal["lower", "upper"]
    value: float
    mc_error: float
    share_above: float
    within_mc_error: bool
    decided_by: str | None = None


class Decision(_Out):
    thresholds: Thresholds
    probability: float
    action: Literal["no_test", "test", "treat"]
    action_text: str
    tests: list[DecisionTest]
    negative_lps_to_low: dict[str, int | None] | None  # None: not counted (a card's answer)
    at_threshold: AtThreshold | None
    workup_pending: list[str]
    workup_text: str
    escalation_text: str
    central: bool = Field(description="Whether the palsy may be central (the forehead spared): the thresholds then "
                                      "weigh the causes only if it proves peripheral")


class Action(_Out):
    id: str
    text: str
    detail: str
    refs: list[str]
    urgency: Literal["escalation", "workup", "care"]


class CauseLabel(_Out):
    label: str
    short: str | None = None


class LeftOutCase(_Out):
    case: str
    method: str
    pareto_k: float
    reliable: bool


class RestsOnRow(_Out):
    """One part of what an answer rests on: a block of parameters, carried by judgment or data."""

    source: str = Field(description="the block: a cause's rate, a cause's finding frequencies, the laboratory, ...")
    kind: Literal["judgment", "data", "monte_carlo", "unlabelled"]
    share: float = Field(ge=0, le=1, description="its share of the variance of the answer's log odds")
    mc_error: float = Field(ge=0, description="the Monte Carlo error of that share (0 for the monte_carlo row, which "
                                              "is the error of the answer's mean)")
    evidence: list[str] = Field(default_factory=list, description="a judgment row: the judgments it rests on most for "
                                "this answer ('cohorts:<entry id>', 'rates:<factor>', 'shares:<finding>', "
                                "'model:<reasoning>'), largest first")


class OtherVariant(_Out):
    """The other variant's answer to the same question (issue 19 item 4)."""

    variant: str
    probability: ProbabilitySummary | None
    difference: float | None = Field(default=None, description="the other variant's mean minus this answer's")
    threshold: float | None = None
    differs: bool
    action: Literal["no_test", "test", "treat"] | None = Field(
        default=None, description="the action the other variant's mean implies with this answer's thresholds")
    note: str | None = None


class Fhir(_Out):
    """What a FHIR record did not say and what was not read (``--fhir``)."""

    not_found: list[Any]
    ignored: list[Any]
    not_in_schema: list[Any]
    notes: list[str]
    onset: Any = None


def _open(description: str) -> Any:
    return Field(description=description)


@functools.lru_cache(maxsize=8)
def answer_model(sc: SC.Schema | None = None) -> type[BaseModel]:
    """The pydantic model of an answer's JSON for the finding schema ``sc`` (default: palsy's)."""
    sc = sc or SC.default()
    level = lambda name: Literal[tuple(list(sc.allowed(name)) + [SC.UNKNOWN])]  # noqa: E731
    lp = sc.lp
    lp_model = create_model("AnswerLP", __base__=_Out,
                            **{m: (Literal[tuple(lp.results)] | None, None) for m in lp.methods},
                            traumatic=(Literal[tuple(lp.traumatic)] | None, None))
    fields: dict[str, Any] = {"id": (str, ...), "description": (str, ...)}
    for name in sc.findings:
        fields[name] = (list[lp_model], ...) if name == lp.name else (level(name), ...)
    patient = create_model("AnswerPatient", __base__=_Out, **fields)
    model = create_model(
        "ModelInfo", __base__=_Out, variant=(str, ...), draws=(int, ...), evidence_hash=(str, ...), version=(str, ...),
        pretest=(float | None, ...), seed=(int, ...), diagnostics_ok=(bool, ...), causes=(list[str], ...),
        causes_weighed=(list[str], ...), not_modelled=(list[str], ...), schema_version=(Literal[sc.version], ...),
        cause_labels=(dict[str, CauseLabel], ...),
        registry=(dict[str, Any], _open("whether a hospital registry informed the fit ('used'), its rows and what "
                                        "it moved")))
    return create_model(
        "Answer", __base__=_Out,
        __doc__="The answer of ``palsy posterior --json`` (docs/design.md §7).",
        schema_version=(Literal[sc.version], Field(description="the version of the finding schema and of this format")),
        patient=(patient, Field(description="the patient as read: every finding, unknown ones as 'unknown'")),
        in_scope=(bool, ...), scope_notes=(list[str], ...), atypical=(Atypical, ...), warnings=(list[str], ...),
        probability=(ProbabilitySummary, Field(description="P(infiltration | findings): the headline is the mean")),
        prior_probability=(ProbabilitySummary, ...), causes=(list[CauseSummary], ...), leading_cause=(str, ...),
        tied=(list[str], Field(description="the causes tied with leading_cause: means closer than two Monte Carlo "
                                           "errors of their difference, an order the computation cannot tell")),
        log_odds=(LogOdds, ...), contributions=(list[Contribution], ...), shapley=(list[Contribution], ...),
        shapley_method=(ShapleyMethod, ...), steps=(list[Step], ...), next_tests=(list[NextTest], ...),
        decision=(Decision | None, ...), actions=(list[Action], ...), model=(model, ...),
        out_of_population=(bool, ...), left_out_case=(LeftOutCase | None, ...),
        rests_on=(list[RestsOnRow], _open("what the answer rests on (docs/design.md §4), largest first and the "
                                          "monte_carlo row last, shares summing to 1; empty under --pretest")),
        variants=(OtherVariant | None, _open("the other variant's answer to the same question; null when that "
                                             "variant is not fitted")),
        fhir=(Fhir | None, Field(default=None, description="with --fhir: what the record did not say")),
    )


def answer_schema(sc: SC.Schema | None = None) -> dict[str, Any]:
    """The JSON Schema of ``palsy posterior --json``'s output."""
    sc = sc or SC.default()
    out = answer_model(sc).model_json_schema()
    return {"$schema": DRAFT, "$id": f"urn:palsy:schema:answer:{sc.version}", "title": "palsy answer",
            "schema_version": sc.version, **{k: v for k, v in out.items() if k != "title"}}


__all__ = ["answer_model", "answer_schema", "patient_schema", "unknown_pattern"]
