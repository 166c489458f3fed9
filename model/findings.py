"""The finding schema (DESIGN §2): names, levels, and parsing and validation of patients.

This module owns the schema; every other module imports it from here. Unknown is never negative:
a finding that is absent, ``null`` or ``unknown`` is ``None`` and is marginalised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from palsy.model.safe_yaml import brief

UNKNOWN = "unknown"

#: Context findings: who the patient is. They enter through the rate model (they move the prior of
#: each cause), in this order.
CONTEXT: tuple[str, ...] = ("lineage", "remission", "age_group", "recent_vincristine", "recent_hsct")

#: Findings in clinical order (the order of the sequential contributions). ``forehead`` sets the
#: scope and enters no likelihood.
FINDINGS: tuple[str, ...] = (
    *CONTEXT,
    "forehead",
    "onset",
    "laterality",
    "eighth_nerve",
    "other_cranial_nerves",
    "peripheral_nerves",
    "vesicles",
    "otoscopy",
    "csf",
    "csf_profile",
    "mri",
)

#: Levels of each categorical finding, as a patient may state them.
LEVELS: dict[str, tuple[str, ...]] = {
    "lineage": ("T-ALL", "B-ALL", "AML", "other"),
    "remission": ("not_in_remission", "remission_on_treatment", "remission_off_treatment"),
    "age_group": ("child", "adult"),
    "recent_vincristine": ("no", "yes"),
    "recent_hsct": ("no", "yes"),
    "forehead": ("involved", "spared"),
    "onset": ("acute", "progressive"),
    "laterality": ("unilateral", "bilateral"),
    "eighth_nerve": ("none", "involved"),
    "other_cranial_nerves": ("none", "one_or_more"),
    "peripheral_nerves": ("none", "one_or_more"),
    "vesicles": ("absent", "present"),
    "otoscopy": ("normal", "abnormal"),
    "csf_profile": ("normal", "protein_only", "pleocytosis"),
    "mri": ("normal", "facial_nerve_enhancement", "vii_viii_enhancement", "otomastoid_inflammation",
            "multiple_nerve_or_leptomeningeal", "mass"),
}

#: Findings whose levels are ``no``/``yes``: YAML reads unquoted yes/no as booleans, accepted here only.
YES_NO: tuple[str, ...] = tuple(name for name, lv in LEVELS.items() if lv == ("no", "yes"))

#: A remission value outside the population: the palsy led to the leukemia diagnosis. It is
#: answered as ``not_in_remission`` and flagged as out of scope (DESIGN §2).
AT_DIAGNOSIS = "at_diagnosis"
PATIENT_EXTRA_LEVELS: dict[str, tuple[str, ...]] = {"remission": (AT_DIAGNOSIS,)}

#: ``forehead: spared`` suggests a central (upper motor neurone) weakness: outside the population.
CENTRAL = ("forehead", "spared")

#: Partly known levels that evidence (not patients) may use: each names the levels it stands for.
PARTIAL_LEVELS: dict[str, dict[str, tuple[str, ...]]] = {
    "lineage": {"ALL": ("T-ALL", "B-ALL")},
    "remission": {"in_remission": ("remission_on_treatment", "remission_off_treatment")},
    "csf_profile": {"abnormal": ("protein_only", "pleocytosis")},
    "mri": {
        "beyond_facial": ("multiple_nerve_or_leptomeningeal", "mass"),
        "vii_enhancement": ("facial_nerve_enhancement", "vii_viii_enhancement"),
    },
}

CSF_RESULTS: tuple[str, ...] = ("negative", "positive")
CSF_METHODS: tuple[str, ...] = ("cytology", "flow")
MAX_LPS = 6

#: The tests whose value the answer looks ahead to (DESIGN §4, "what the next test could do").
NEXT_TESTS: tuple[str, ...] = ("lp_cytology", "lp_flow", "mri")

DESCRIPTIONS: dict[str, str] = {
    "lineage": "leukemia type",
    "remission": "status when the palsy started",
    "age_group": "child (under 18) or adult",
    "recent_vincristine": "a vinca-alkaloid dose in the 4 weeks before onset",
    "recent_hsct": "allogeneic HSCT in the 12 months before onset",
    "forehead": "forehead involved (peripheral) or spared (suggests a central palsy)",
    "onset": "acute (maximal within 72 hours) or progressive",
    "laterality": "facial palsy on one or both sides",
    "eighth_nerve": "hearing loss, tinnitus or vertigo on the side of the palsy",
    "other_cranial_nerves": "objective deficit of a cranial nerve other than VII and VIII",
    "peripheral_nerves": "peripheral nerve, plexus or root involvement",
    "vesicles": "zoster vesicles on the ear, face, palate or tongue",
    "otoscopy": "otitis media, otorrhoea, canal swelling or a mass in the canal",
    "csf": "lumbar punctures in order (malignant cells)",
    "csf_profile": "white cells and protein of the first LP",
    "mri": "contrast MRI pattern",
}


class InputError(ValueError):
    """Bad input: names the source, the field, the value and what is allowed (exit status 2)."""

    def __init__(self, problems: list[str], source: str = "input") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: invalid input\n{lines}")


@dataclasses.dataclass(frozen=True)
class LP:
    """One lumbar puncture: its result and the method that read it."""

    result: str
    method: str

    @property
    def code(self) -> str:
        """``result:method``, the form used by the command line and JSON."""
        return f"{self.result}:{self.method}"


def _finding_fields() -> dict[str, Any]:
    return {name: None for name in FINDINGS if name != "csf"}


@dataclasses.dataclass(frozen=True)
class Patient:
    """A patient's findings. ``values`` maps each categorical finding to its level or ``None``
    (unknown, marginalised); ``csf`` is a tuple of LPs in order."""

    id: str = "patient"
    description: str = ""
    values: dict[str, str | None] = dataclasses.field(default_factory=_finding_fields)
    csf: tuple[LP, ...] = ()

    def __getattr__(self, name: str) -> str | None:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def __hash__(self) -> int:
        return hash((self.id, self.description, tuple(sorted(self.values.items(), key=lambda kv: kv[0])), self.csf))

    @property
    def at_diagnosis(self) -> bool:
        """True when the palsy led to the diagnosis: outside the population of the model."""
        return self.values.get("remission") == AT_DIAGNOSIS

    @property
    def central(self) -> bool:
        """True when the forehead is spared: a central palsy is outside the population."""
        return self.values.get(CENTRAL[0]) == CENTRAL[1]

    @property
    def in_scope(self) -> bool:
        return not (self.at_diagnosis or self.central)

    def level(self, finding: str) -> str | None:
        """The level used for computation (``at_diagnosis`` is answered as not in remission)."""
        value = self.values.get(finding)
        if finding == "remission" and value == AT_DIAGNOSIS:
            return "not_in_remission"
        return value

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
        for name in FINDINGS:
            if name == "csf":
                out["csf"] = [{"result": lp.result, "method": lp.method} for lp in self.csf]
            else:
                out[name] = self.values.get(name) or UNKNOWN
        return out


def allowed(finding: str) -> tuple[str, ...]:
    """Levels a patient may give for ``finding`` (besides ``unknown``)."""
    return LEVELS[finding] + PATIENT_EXTRA_LEVELS.get(finding, ())


def _is_unknown(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == UNKNOWN)


def parse_lp(value: Any, where: str) -> tuple[LP | None, str | None]:
    """Parse one LP from ``{result, method}`` or ``"result:method"``; return (LP, problem)."""
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) != 2:
            return None, (
                f"{where}: {brief(value)} is not result:method; allowed: "
                f"result one of {', '.join(CSF_RESULTS)}, method one of {', '.join(CSF_METHODS)}"
            )
        value = {"result": parts[0].strip(), "method": parts[1].strip()}
    if not isinstance(value, Mapping):
        return None, f"{where}: {brief(value)} is not an LP; give {{result: ..., method: ...}}"
    extra = sorted(map(str, set(value) - {"result", "method"}))
    problems = []
    if extra:
        problems.append(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed: result, method")
    result, method = value.get("result"), value.get("method")
    if result not in CSF_RESULTS:
        problems.append(f"{where}.result: {brief(result)} is not allowed; allowed: {', '.join(CSF_RESULTS)}")
    if method not in CSF_METHODS:
        problems.append(f"{where}.method: {brief(method)} is not allowed; allowed: {', '.join(CSF_METHODS)}")
    if problems:
        return None, "; ".join(problems)
    return LP(str(result), str(method)), None


def as_level(name: str, raw: Any) -> Any:
    """Booleans (YAML's unquoted yes/no) become ``yes``/``no`` for the yes/no findings only."""
    if name in YES_NO and isinstance(raw, bool):
        return "yes" if raw else "no"
    return raw


def parse_patient(data: Any, source: str = "patient") -> Patient:
    """Validate a mapping (a parsed YAML file or flags) and return a :class:`Patient`.

    Parameters
    ----------
    data : mapping
        ``id``, ``description`` and findings of DESIGN §2; any other key is an error.
    source : str
        Named in error messages (a file name, or ``command line``).

    Raises
    ------
    InputError
        Listing every problem, each naming the field, the value given and the values allowed.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InputError([f"the patient must be a mapping of findings, got {type(data).__name__}"], source)
    problems: list[str] = []
    known_keys = {"id", "description", *FINDINGS}
    for key in data:
        if key not in known_keys:
            problems.append(
                f"{key}: unknown field (value {brief(data[key])}); allowed fields: {', '.join(['id', 'description', *FINDINGS])}"
            )
    top: dict[str, Any] = {}
    for key in ("id", "description"):
        if key in data and data[key] is not None:
            if not isinstance(data[key], str):
                problems.append(f"{key}: {brief(data[key])} must be text (quote it in YAML)")
            else:
                top[key] = data[key]
    values: dict[str, str | None] = {}
    csf: tuple[LP, ...] = ()
    for name in FINDINGS:
        raw = as_level(name, data.get(name))
        if name == "csf":
            csf = _parse_csf(raw, problems)
            continue
        if _is_unknown(raw):
            values[name] = None
        elif not isinstance(raw, str) or raw not in allowed(name):
            problems.append(
                f"{name}: {brief(raw)} is not allowed; allowed: {', '.join(allowed(name))} or unknown"
            )
        else:
            values[name] = raw
    if problems:
        raise InputError(problems, source)
    return Patient(values=values, csf=csf, **top)


def _parse_csf(raw: Any, problems: list[str]) -> tuple[LP, ...]:
    if _is_unknown(raw):
        return ()
    if not isinstance(raw, list):
        problems.append(
            f"csf: {brief(raw)} is not a list of LPs; give e.g. [{{result: negative, method: cytology}}] or unknown"
        )
        return ()
    if len(raw) > MAX_LPS:
        problems.append(f"csf: {len(raw)} LPs given; at most {MAX_LPS} are allowed")
    lps = []
    for i, item in enumerate(raw, start=1):
        lp, problem = parse_lp(item, f"csf[{i}]")
        if problem:
            problems.append(problem)
        else:
            lps.append(lp)
    return tuple(lps)


def with_overrides(patient: Patient, overrides: Mapping[str, Any], source: str = "command line") -> Patient:
    """Return ``patient`` with flag values replacing file values (flags override the file)."""
    merged = patient.to_dict()
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return parse_patient(merged, source)
