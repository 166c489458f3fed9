"""The feedback endpoint's reading of a request: which outcomes are recorded, which are refused and why, and the
feedback log's line for each.

An outcome is recorded for a card this service issued, within the card's feedback window (``feedback_window_days``,
longer than its report: a clinician may dismiss a card the record system kept on screen long after its report
expired, CDS Hooks 2.0 "a card once ignored could later be acted upon"). Each outcome of a request is answered on
its own (CDS Hooks 2.0: "the feedback endpoint may be called for multiple hook instances or multiple cards at the
same time"): the known ones are recorded and the others listed, and only a request none of whose outcomes can be
recorded is a 400. Until s17 feedback was taken only while the card's report lived (an hour by default), and one
unknown card refused the whole request.

palsy's cards offer no suggestions (palsy never writes to the record, so it has nothing for a client to carry
out): an ``acceptedSuggestions`` id is one the card never issued, and its outcome is refused. A conforming client
therefore sends overrides only; the registry loop sees overrides and silence, not acceptances (docs/registry.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from palsy.scripts.serve.bodies import Feedback, instant

#: The most characters of a JWT ``tenant`` claim the log keeps (an opaque string naming the organisation).
TENANT_CHARS = 200


def tenant_of(claims: dict[str, Any]) -> str | None:
    """The token's ``tenant`` claim when it is text the log may keep (printable, at most :data:`TENANT_CHARS`)."""
    tenant = claims.get("tenant")
    if isinstance(tenant, str) and 0 < len(tenant) <= TENANT_CHARS and tenant.isprintable():
        return tenant
    return None


def sort_out(outcomes: list[Any], issued_at: Callable[[str], float | None], window_days: int,
             skew_seconds: float = 60) -> tuple[list[Feedback], list[str], int]:
    """The outcomes that can be recorded, and a problem line for each of the others (by its place in the request):
    each read as a :class:`Feedback` on its own (a malformed one is refused alone), for a card this service issued
    (``issued_at(card)``: when, None for any other or one past its window), with no suggestions (palsy offers
    none), at a time no earlier than the card and no later than now (each with ``skew_seconds`` of clock skew: a
    1970 or 2099 outcome was recorded, second review #15). The third value: how many were refused as malformed."""
    kept, refused, malformed = [], [], 0
    now = time.time()
    for i, item in enumerate(outcomes):
        try:
            f = Feedback.model_validate(item)
        except ValidationError as exc:
            refused.append(f"feedback.{i}: " + "; ".join(_problem(e) for e in exc.errors()[:3]))
            malformed += 1
            continue
        when = issued_at(f.card)
        at = instant(f.outcomeTimestamp).timestamp()
        if when is None:
            refused.append(f"feedback.{i}.card: {f.card!r} is not a card this service issued, or its feedback window "
                           f"({window_days} days after the card) has passed")
        elif f.acceptedSuggestions:
            refused.append(f"feedback.{i}.acceptedSuggestions: palsy's cards offer no suggestions, so these ids are "
                           f"none the card issued")
        elif at < when - skew_seconds:
            refused.append(f"feedback.{i}.outcomeTimestamp: {f.outcomeTimestamp} is before the card was issued "
                           f"({_utc(when)})")
        elif at > now + skew_seconds:
            refused.append(f"feedback.{i}.outcomeTimestamp: {f.outcomeTimestamp} is in the future (the service's "
                           f"clock: {_utc(now)})")
        else:
            kept.append(f)
    return kept, refused, malformed


def _problem(error: Any) -> str:
    """One validation error in words: where (its fields) and what."""
    where = ".".join(str(p) for p in error.get("loc", ()))
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def outcome_entry(f: Feedback, received: str, service_id: str, issuer: str | None,
                  tenant: str | None = None) -> dict[str, Any]:
    """The feedback log's line for one outcome: bounded fields only, no free text (a reason by its system and
    code, a comment by whether there was one), the issuer of the token that sent it and its tenant (one issuer
    may serve several organisations)."""
    # the card as the service wrote it (a UUID's lower-case form), so that the log pairs it with its answer
    e: dict[str, Any] = {"received": received, "service": service_id, "card": str(uuid.UUID(f.card)),
                         "outcome": f.outcome, "outcomeTimestamp": f.outcomeTimestamp}
    if issuer is not None:
        e["issuer"] = issuer
    if tenant is not None:
        e["tenant"] = tenant
    if f.overrideReason is not None:
        reason = f.overrideReason.reason
        coded = reason.model_dump(include={"system", "code"}, exclude_none=True) if reason is not None else {}
        if coded:
            e["overrideReason"] = coded
        e["hasComment"] = bool(f.overrideReason.userComment)
    return e
