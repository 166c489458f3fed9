"""The request bodies the service reads (validation and the OpenAPI description): a CDS Hooks 2.0 service call and
the feedback on a card."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palsy.reports import cards


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 service call (the fields palsy reads; others are allowed and ignored)."""

    model_config = ConfigDict(extra="allow")
    hook: str
    hookInstance: str
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    fhirServer: str | None = None


#: A card's or a suggestion's id: CDS Hooks 2.0 names them by the ``uuid`` the service gave, and palsy's are UUIDs.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: RFC 3339's date-time, CDS Hooks 2.0's ``outcomeTimestamp`` (``[0-9]``: pydantic's ``\d`` matches any script's digits).
DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
#: The most suggestions one outcome may name (palsy's cards offer none).
MAX_SUGGESTIONS = 20


class Coding(BaseModel):
    """An override reason's Coding: its system (a URI) and code are logged, never its display (a client's
    own reasons may carry any words)."""

    model_config = ConfigDict(extra="allow")
    system: str | None = Field(None, max_length=200, pattern=r"^\S+$")
    code: str | None = Field(None, max_length=64, pattern=r"^\S+( \S+)*$")  # FHIR's code
    display: str | None = Field(None, max_length=200)


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    reason: Coding | None = None
    userComment: str | None = Field(None, max_length=10_000)  # never logged: only whether there was one


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=UUID_PATTERN)


def instant(value: str) -> dt.datetime:
    """An RFC 3339 date-time (already of its shape) as an aware datetime: month 01-12, a day of that month, hours
    to 23, minutes to 59, seconds to 60 (a leap second, read as 59), an offset within a day (2026-99-99T99:99:99Z
    and offsets of +99:99 were taken and stored until s17).

    Raises
    ------
    ValueError
        When it is not a real date and time.
    """
    text = value.upper().replace("Z", "+00:00")
    date, _, rest = text.partition("T")
    clock, offset = rest[:8], rest[8:]
    if clock.endswith(":60"):  # RFC 3339 allows a leap second; Python's datetime does not
        clock = clock[:-2] + "59"
    fraction, sign, zone = offset.rpartition("+") if "+" in offset else offset.rpartition("-")
    try:
        return dt.datetime.fromisoformat(f"{date}T{clock}{fraction[:7]}{sign}{zone}")
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not a date and time (RFC 3339, e.g. 2026-01-02T10:00:00Z)") from None


def _rfc3339(value: str) -> str:
    """``value`` when it is a real date and time (:func:`instant`)."""
    instant(value)
    return value


class Feedback(BaseModel):
    """One card's outcome. An override reason goes with ``overridden`` only, and is a Coding with both its system
    and its code (CDS Hooks 2.0, Coding); one in palsy's own code system must be a reason the cards offer (a
    client may add reasons of its own systems, "A CDS Client MAY augment the override reasons": logged by system
    and code). Every field logged is bounded and none is free text: the card and suggestions by their UUIDs, the
    time as RFC 3339, a reason by its system and code (until 5 December a reason's display and the ids were
    logged as sent, of any length)."""

    model_config = ConfigDict(extra="allow")
    card: str = Field(pattern=UUID_PATTERN)
    outcome: str = Field(pattern="^(accepted|overridden)$")
    outcomeTimestamp: str = Field(pattern=DATE_TIME_PATTERN)
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(None, max_length=MAX_SUGGESTIONS)
    overrideReason: OverrideReason | None = None

    @field_validator("outcomeTimestamp")
    @classmethod
    def _timestamp(cls, value: str) -> str:
        return _rfc3339(value)

    @model_validator(mode="after")
    def _reason_fits(self) -> Feedback:
        if self.overrideReason is not None and self.outcome != "overridden":
            raise ValueError(f"an overrideReason goes with the outcome overridden, not {self.outcome}")
        reason = self.overrideReason.reason if self.overrideReason is not None else None
        if reason is not None and (reason.system is None or reason.code is None):
            # without its system a code cannot be told from palsy's own (it read as one on the adjudication form)
            raise ValueError(f"overrideReason.reason is a Coding with both a system and a code (CDS Hooks 2.0); "
                             f"palsy's cards offer the codes of {cards.OVERRIDE_SYSTEM}: {', '.join(cards.OVERRIDE_REASONS)}")
        if reason is not None and reason.system == cards.OVERRIDE_SYSTEM and reason.code not in cards.OVERRIDE_REASONS:
            raise ValueError(f"overrideReason.reason.code {str(reason.code)[:40]!r} is not a reason palsy's cards offer; "
                             f"the codes of {cards.OVERRIDE_SYSTEM} are {', '.join(cards.OVERRIDE_REASONS)}")
        return self


class FeedbackRequest(BaseModel):
    """A feedback request: its outcomes are any JSON here, each read as a :class:`Feedback` on its own
    (:func:`palsy.scripts.serve.feedback.sort_out`), so that one malformed outcome does not discard the others
    (second review #8: a list of :class:`Feedback` was validated as a whole, and one bad item refused them all; in
    s18 a list of objects still refused them all for one item that was not an object, a number or null)."""

    model_config = ConfigDict(extra="allow")
    feedback: list[Any] = Field(min_length=1, max_length=100)
