"""The model of ``rates.yaml``: the rate model's blocks, factors and targets.

The shares' cells are nested by the levels of the context findings each share is given (``shares.<finding>
.given``), so their layout depends on the schema: :mod:`palsy.model.rates` reads them. Everything else of
the file is checked here: each factor is exactly one of a log-normal, a Beta or a fixed value, each block
says where its numbers come from (a reference key or, for expert judgment, its reasoning).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainValidator, model_validator

from palsy.model.file_models.base import (
    Beta,
    Number,
    OptionalKeys,
    Positive,
    Problem,
    Strict,
    Text,
    above,
    where,
    yes_no,
    yes_no_keys,
)

#: What a rate block's ``kind`` may say.
SOURCE_KINDS = ("expert_judgment", "cited")


class Sourced(Strict):
    """Where a number comes from: reference keys, or (expert judgment) its reasoning."""

    kind: Literal["expert_judgment", "cited"] | None = None
    ref: OptionalKeys = ()
    reasoning: str | None = None
    where: str | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _sourced(self) -> Sourced:
        if not self.ref and not (self.reasoning or "").strip():
            raise Problem("give a reference key or, for expert judgment, its reasoning", field="ref")
        if self.kind == "expert_judgment" and not (self.reasoning or "").strip():
            raise Problem("expert judgment needs its reasoning", field="reasoning")
        return self


class LogNormal(Strict):
    """A log-normal by its median and the factor of its 90% interval (``median */ factor90``)."""

    median: Positive
    factor90: Annotated[float, PlainValidator(above(1))]
    lower: Annotated[float, PlainValidator(above(0, strict=False))] = 0.0

    @model_validator(mode="after")
    def _lower(self) -> LogNormal:
        if self.lower >= self.median:
            raise Problem("a lower bound must be >= 0 and below the median", field="lower", value=self.lower)
        return self


def _leak(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v == float("inf"):
        raise Problem("must be a number > 0 (a leak, not an exact zero)")
    return float(v)


class Multiplier(Sourced):
    """A multiplier of a cause's rate for one level of a context finding: a log-normal or a fixed value."""

    lognormal: LogNormal | None = None
    value: Annotated[float, PlainValidator(_leak)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Multiplier:
        given = [k for k in ("lognormal", "beta", "value") if getattr(self, k, None) is not None]
        allowed = "lognormal, beta or value" if "beta" in type(self).model_fields else "lognormal or value"
        if len(given) != 1:
            raise Problem(f"give exactly one of {allowed} (given: {', '.join(given) or 'none'})")
        return self


class Factor(Multiplier):
    """A factor of a cause's rate: a log-normal, a Beta (a probability) or a fixed value."""

    beta: Beta | None = None


class CauseRates(Strict):
    """One cause's rate: its factors (the rate at the reference levels), its multipliers per level, and its
    interactions: a multiplier of the strata where several context findings each have a given level (keyed
    ``"lineage=AML & recent_vincristine=no"``; :func:`palsy.model.rates.interaction_levels` reads the key)."""

    factors: dict[str, Factor] = Field(min_length=1)
    multipliers: dict[str, dict[str, Multiplier]] = {}
    interactions: dict[str, Multiplier] = {}
    reference: dict[str, Any] = {}
    reasoning: str | None = None
    ref: OptionalKeys = ()

    @model_validator(mode="before")
    @classmethod
    def _yes_no_levels(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("multipliers"), dict):
            v = {**v, "multipliers": {k: yes_no_keys(m) for k, m in v["multipliers"].items()}}
        if isinstance(v, dict) and isinstance(v.get("reference"), dict):
            v = {**v, "reference": {k: yes_no(x) for k, x in v["reference"].items()}}
        return v


class Window(Sourced):
    """How many years of patient-time a lineage's cumulative risks are counted over."""

    value: Positive


def _range(v: Any) -> list[float]:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          for x in v) and 0 <= v[0] < v[1] <= 1):
        raise Problem("give [low, high] with 0 <= low < high <= 1")
    return [float(x) for x in v]


class TargetRange(Sourced):
    """A published range the rate model's implied risk should fall in."""

    range: Annotated[list[float], PlainValidator(_range)]


class Target(Strict):
    """An implied risk of one cause per lineage: ``cause``, the factors left out, and a range per lineage."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, TargetRange]

    cause: Text
    exclude_factors: list[Text] = []


class Targets(Strict):
    cumulative_relapse: Target
    cumulative_palsy: Target
    cause_share: dict[str, TargetRange]


class ShareBlock(Strict):
    """A context finding's patient-time share: ``given`` (its parents) and cells read by :mod:`palsy.model.rates`."""

    model_config = ConfigDict(extra="allow")

    given: list[Text] = []

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise Problem("give `given` (its parents) and the shares: counts and weight, mean and concentration, "
                          "or a Beta, per cell of the parents' levels")
        return v


class RatesFile(Strict):
    """``rates.yaml``."""

    population: Text | None = None
    window_years: dict[str, Window]
    reference: dict[str, Any]
    shares: dict[str, ShareBlock]
    rates: dict[str, CauseRates]
    targets: Targets


#: How deep each top-level block's entries are: an entry is named by its path (``rates.bell.factors.incidence``).
_DEPTH = {"window_years": 2, "shares": 2, "targets": 3, "reference": 1, "population": 1}


def entry_of(loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """The entry of a location in ``rates.yaml``: a factor, a multiplier, a window, a share or a target."""
    if not loc:
        return "-", ()
    if loc[0] == "rates":
        depth = {"factors": 4, "interactions": 4, "multipliers": 5}.get(loc[2] if len(loc) > 2 else None, 2)
    else:
        depth = _DEPTH.get(str(loc[0]), 1)
    depth = min(depth, len(loc))
    return where(loc[:depth]), loc[depth:]


__all__ = ["CauseRates", "Factor", "Multiplier", "Number", "RatesFile", "SOURCE_KINDS", "Sourced", "Target",
           "TargetRange", "Window", "entry_of"]
