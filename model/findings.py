"""Patients: parsing and validation of a patient's findings against the schema (docs/design.md §2).

The schema itself (names, levels, roles, labels) is data, read by :mod:`palsy.model.schema`; this
module turns a mapping (a patient file, the command line's flags, a FHIR record's mapping) into a
:class:`Patient`. Unknown is never negative: a finding that is absent, ``null`` or ``unknown`` is
``None`` and is marginalised. Besides the findings a patient has only ``id`` and ``description``; any
other key is an error (with a did-you-mean), and so is any key given twice (refused by the YAML
loader).

An LP is one lumbar puncture: a result per method read on the same sample (cytology, flow; either may
be missing) and whether the tap was traumatic. In a file ``{cytology: negative, flow: positive,
traumatic: no}``; on the command line ``cytology=negative,flow=positive,traumatic=no``. Version 2's
``{result, method}`` and ``negative:flow`` are still read (one method).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from typing import Any

from palsy.model import schema as SC
from palsy.model.safe_yaml import brief
from palsy.model.schema import UNKNOWN, Schema

#: Problems listed in one message at most (the rest are counted): a file with 100,000 bad LPs is refused
#: with a message of a few lines.
MAX_PROBLEMS = 50


#: The credible intervals' masses an answer gives: below a half an interval says little, and above 0.9999 its
#: ends rest on a handful of the 4,000 draws and its label would read '100% CrI' (an attacker's review, s16:
#: --ci 1e-320 printed a 9.999888672e-319% CrI).
CI_RANGE = (0.5, 0.9999)
#: A number as palsy reads it from text (a flag, a CSV cell): ASCII digits, a point, an exponent. Python's float()
#: and int() also read other scripts' digits ('٠.٩', '٦') and underscores ('0.9_0'), which no one types on
#: purpose (an attacker's review, s16).
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
PLAIN_WHOLE = re.compile(r"[+-]?[0-9]+")


class InputError(ValueError):
    """Bad input: names the source, the field, the value and what is allowed (exit status 2)."""

    def __init__(self, problems: list[str], source: str = "input") -> None:
        self.problems = list(problems)
        self.source = source
        shown = self.problems[:MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = "\n".join(f"  - {p}" for p in shown) + (f"\n  ... and {more:,} more" if more else "")
        super().__init__(f"{source}: invalid input\n{lines}")


@dataclasses.dataclass(frozen=True)
class LP:
    """One lumbar puncture: its results by method (in the schema's method order) and whether the tap
    was traumatic (``None``: not stated, marginalised)."""

    results: tuple[tuple[str, str], ...]
    traumatic: str | None = None

    @classmethod
    def of(cls, traumatic: str | None = None, **results: str | None) -> LP:
        """``LP.of(cytology="negative", flow="positive")`` (methods given as keywords)."""
        return cls(tuple((m, r) for m, r in results.items() if r is not None), traumatic)

    def result(self, method: str) -> str | None:
        """The result read by ``method``, or None when that method was not done (or not stated)."""
        return dict(self.results).get(method)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.results)

    @property
    def positive(self) -> bool:
        """Malignant cells by at least one method."""
        return any(r == "positive" for _, r in self.results)

    @property
    def code(self) -> str:
        """``cytology=negative,flow=positive,traumatic=no``: the command line's form, and the JSON's label."""
        parts = [f"{m}={r}" for m, r in self.results]
        if self.traumatic is not None:
            parts.append(f"traumatic={self.traumatic}")
        return ",".join(parts)

    def to_dict(self) -> dict[str, str]:
        out = dict(self.results)
        if self.traumatic is not None:
            out["traumatic"] = self.traumatic
        return out


@dataclasses.dataclass(frozen=True)
class Patient:
    """A patient's findings. ``values`` maps each categorical finding to its level or ``None``
    (unknown, marginalised); ``csf`` is a tuple of LPs in order; ``schema`` the schema they follow."""

    id: str = "patient"
    description: str = ""
    values: dict[str, str | None] = dataclasses.field(default_factory=dict)
    csf: tuple[LP, ...] = ()
    schema: Schema = dataclasses.field(default_factory=SC.default, compare=False, repr=False)

    def __getattr__(self, name: str) -> str | None:
        values = self.__dict__.get("values")
        schema = self.__dict__.get("schema")
        if values is not None and schema is not None and name in schema.categorical:
            return values.get(name)
        raise AttributeError(name)

    def __hash__(self) -> int:
        return hash((self.id, self.description, tuple(sorted(self.values.items(), key=lambda kv: kv[0])), self.csf))

    @property
    def scope_keys(self) -> tuple[str, ...]:
        """The scope notes (keys of model.yaml's ``scope``) the findings raise: outside the population."""
        keys = (self.schema.scope_note(name, self.values.get(name)) for name in self.schema.categorical)
        return tuple(k for k in keys if k)

    @property
    def at_diagnosis(self) -> bool:
        """True when the palsy led to the diagnosis: outside the population of the model."""
        return "at_diagnosis" in self.scope_keys

    @property
    def central(self) -> bool:
        """True when the findings suggest a central palsy (the forehead spared): outside the population."""
        return "central" in self.scope_keys

    @property
    def in_scope(self) -> bool:
        return not self.scope_keys

    def level(self, finding: str) -> str | None:
        """The level used for computation (a patient-only level such as ``at_diagnosis`` is answered as
        the level the schema names)."""
        return self.schema.answered_as(finding, self.values.get(finding))

    def replace(self, **changes: Any) -> Patient:
        """A copy with findings (or ``csf``, ``id``, ``description``) replaced."""
        values = dict(self.values)
        top = {}
        for key, value in changes.items():
            if key in ("id", "description", "csf"):
                top[key] = value
            else:
                values[key] = value
        return dataclasses.replace(self, values=values, **top)

    def to_dict(self) -> dict[str, Any]:
        """The patient as a YAML/JSON-ready mapping (unknown findings as ``unknown``)."""
        out: dict[str, Any] = {"id": self.id, "description": self.description}
        for name in self.schema.findings:
            if name == self.schema.lp.name:
                out[name] = [lp.to_dict() for lp in self.csf]
            else:
                out[name] = self.values.get(name) or UNKNOWN
        return out


def _is_unknown(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == UNKNOWN)


def _allowed_text(values: tuple[str, ...], unknown: bool = True) -> str:
    return ", ".join(values) + (" or unknown" if unknown else "")


def _bool_hint(raw: Any) -> str:
    return " (YAML reads an unquoted yes/no/on/off/true/false as a boolean; write the level itself)" \
        if isinstance(raw, bool) else ""


def parse_lp(value: Any, where: str, schema: Schema | None = None) -> tuple[LP | None, list[str]]:
    """One LP from ``{cytology: ..., flow: ..., traumatic: ...}``, ``cytology=...,flow=...``, or
    version 2's ``{result, method}`` / ``"result:method"``; returns (LP, problems)."""
    schema = schema or SC.default()
    spec = schema.lp
    methods, results, traumatic_levels = spec.methods, spec.results, spec.traumatic
    form = (f"give {{{', '.join(f'{m}: {results[0]}|{results[1]}' for m in methods)}, traumatic: no|yes}} "
            f"(any may be missing), or {','.join(f'{m}={results[0]}' for m in methods)}[,traumatic=yes]")
    if isinstance(value, str):
        text = value.strip()
        if "=" in text:
            pairs: dict[str, Any] = {}
            for part in text.split(","):
                key, sep, val = part.partition("=")
                key, val = key.strip(), val.strip()
                if not sep or not key:
                    return None, [f"{where}: {brief(value)} is not an LP; {form}"]
                if key in pairs:
                    return None, [f"{where}: {key!r} given twice in {brief(value)}; give each once"]
                pairs[key] = val
            value = pairs
        else:
            parts = text.split(":")
            if len(parts) != 2:
                return None, [f"{where}: {brief(value)} is not an LP; {form}, or result:method (e.g. negative:flow)"]
            value = {"result": parts[0].strip(), "method": parts[1].strip()}
    if not isinstance(value, Mapping):
        return None, [f"{where}: {brief(value)} is not an LP; {form}"]
    if "result" in value or "method" in value:  # version 2: one method
        extra = sorted(map(str, set(value) - {"result", "method", "traumatic"}))
        problems = []
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(map(repr, extra))} beside result/method; "
                            f"allowed: result, method, traumatic")
        result, method = value.get("result"), value.get("method")
        if result not in results:
            problems.append(f"{where}.result: {brief(result)}{_bool_hint(result)} is not allowed; allowed: {', '.join(results)}")
        if method not in methods:
            problems.append(f"{where}.method: {brief(method)} is not allowed; allowed: {', '.join(methods)}")
        trauma, tp = _traumatic(value.get("traumatic"), where, traumatic_levels)
        problems += tp
        if problems:
            return None, problems
        return LP(((str(method), str(result)),), trauma), []
    problems = []
    allowed_keys = (*methods, "traumatic")
    for key in value:
        if key not in allowed_keys:
            near = difflib.get_close_matches(str(key), allowed_keys, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            problems.append(f"{where}: unknown key {brief(key)}{hint} allowed: {', '.join(allowed_keys)}")
    got = []
    for m in methods:
        raw = value.get(m)
        if _is_unknown(raw):
            continue
        if raw not in results:
            problems.append(f"{where}.{m}: {brief(raw)}{_bool_hint(raw)} is not allowed; allowed: "
                            f"{_allowed_text(results)}")
        else:
            got.append((m, str(raw)))
    trauma, tp = _traumatic(value.get("traumatic"), where, traumatic_levels)
    problems += tp
    if not problems and not got:
        problems.append(f"{where}: no result; give at least one of {', '.join(methods)} "
                        f"(an LP whose results are not known yet is left out)")
    if problems:
        return None, problems
    return LP(tuple(got), trauma), []


def _traumatic(raw: Any, where: str, levels: tuple[str, ...]) -> tuple[str | None, list[str]]:
    if isinstance(raw, bool):  # unquoted yes/no
        raw = "yes" if raw else "no"
    if _is_unknown(raw):
        return None, []
    if raw not in levels:
        return None, [f"{where}.traumatic: {brief(raw)} is not allowed; allowed: {_allowed_text(levels)}"]
    return str(raw), []


def parse_patient(data: Any, source: str = "patient", *, schema: Schema | None = None) -> Patient:
    """Validate a mapping (a parsed YAML file or flags) and return a :class:`Patient`.

    Parameters
    ----------
    data : mapping
        ``id``, ``description`` and findings of the schema; any other key is an error.
    source : str
        Named in error messages (a file name, or ``command line``).
    schema : Schema, optional
        The schema the findings follow (default: the one shipped with palsy).

    Raises
    ------
    InputError
        Listing every problem, each naming the field, the value given and the values allowed.
    """
    schema = schema or SC.default()
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InputError([f"the patient must be a mapping of findings, got {type(data).__name__}"], source)
    problems: list[str] = []
    known_keys = ("id", "description", *schema.findings)
    for key in data:
        if key not in known_keys:
            near = difflib.get_close_matches(str(key), known_keys, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            problems.append(f"{brief(key)}: unknown field (value {brief(data[key])}){hint} allowed fields: "
                            f"{', '.join(known_keys)}")
    top: dict[str, Any] = {}
    for key in ("id", "description"):
        if key in data and data[key] is not None:
            if not isinstance(data[key], str):
                problems.append(f"{key}: {brief(data[key])} must be text (quote it in YAML)")
            else:
                top[key] = data[key]
    values: dict[str, str | None] = {}
    csf: tuple[LP, ...] = ()
    for name in schema.findings:
        if name == schema.lp.name:
            csf = _parse_csf(data.get(name), problems, schema)
            continue
        raw = schema.as_level(name, data.get(name))
        if _is_unknown(raw):
            values[name] = None
        elif not isinstance(raw, str) or raw not in schema.allowed(name):
            near = difflib.get_close_matches(raw, schema.allowed(name), n=1) if isinstance(raw, str) else []
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"{name}: {brief(raw)}{_bool_hint(raw)} is not allowed{hint}; allowed: "
                            f"{_allowed_text(schema.allowed(name))}")
        else:
            values[name] = raw
    if problems:
        raise InputError(problems, source)
    return Patient(values=values, csf=csf, schema=schema, **top)


def _parse_csf(raw: Any, problems: list[str], schema: Schema) -> tuple[LP, ...]:
    name, spec = schema.lp.name, schema.lp
    if _is_unknown(raw):
        return ()
    if not isinstance(raw, list):
        problems.append(f"{name}: {brief(raw)} is not a list of LPs; give e.g. "
                        f"[{{{spec.methods[0]}: negative, {spec.methods[-1]}: negative}}] or unknown")
        return ()
    if len(raw) > spec.max_lps:
        problems.append(f"{name}: {len(raw):,} LPs given; at most {spec.max_lps} are allowed")
        return ()  # each one is not checked: the list is refused whole
    lps = []
    for i, item in enumerate(raw, start=1):
        lp, found = parse_lp(item, f"{name}[{i}]", schema)
        problems += found
        if lp is not None:
            lps.append(lp)
    return tuple(lps)


def with_overrides(patient: Patient, overrides: Mapping[str, Any], source: str = "command line") -> Patient:
    """Return ``patient`` with flag values replacing file values (flags override the file)."""
    merged = patient.to_dict()
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return parse_patient(merged, source, schema=patient.schema)
