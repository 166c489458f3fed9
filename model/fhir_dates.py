"""FHIR dates, dateTimes and instants as :mod:`palsy.model.fhir` reads them: what each can mean (a day, a
range of days for a partial date, an instant where a time and its offset are given), the record's own zone, and
day arithmetic held to the calendar's ends (split from ``fhir.py``, December 2026)."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

_DATETIME = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
                       r"(Z|[+-]\d{2}:\d{2})?)?)?)?")
DAY_SECONDS = 86400
#: An age's UCUM units (and their spelled forms) in years: an onsetAge (read in whole years or months only) and a
#: reference range's ages.
AGE_UNIT_YEARS = {"a": 1.0, "yr": 1.0, "year": 1.0, "years": 1.0, "mo": 1 / 12, "month": 1 / 12, "months": 1 / 12,
                  "wk": 7 / 365.25, "d": 1 / 365.25}
_FIRST_ORDINAL, _LAST_ORDINAL = dt.date.min.toordinal(), dt.date.max.toordinal()


class When(NamedTuple):
    """What a FHIR date, dateTime or instant can mean: its first and last day in the record's zone
    (:func:`record_zone`) and, when a time of day is given with its offset, the instant itself (seconds since
    0001-01-01T00:00Z: integers, so no date at the calendar's ends can overflow)."""

    lo: dt.date
    hi: dt.date
    at: int | None = None


def _day(ordinal: int) -> dt.date:
    """The date of a day number, held to the calendar's ends (year 1 to 9999)."""
    return dt.date.fromordinal(min(max(ordinal, _FIRST_ORDINAL), _LAST_ORDINAL))


def shift(day: dt.date, days: int) -> dt.date:
    """``day`` moved by ``days``, held to the calendar's ends (0001-01-01 minus 28 days is 0001-01-01)."""
    return _day(day.toordinal() + days)


def _offset_minutes(tz: str) -> int:
    if tz == "Z":
        return 0
    return (-1 if tz[0] == "-" else 1) * (int(tz[1:3]) * 60 + int(tz[4:6]))


def parse_when(text: Any, zone_minutes: int = 0) -> When | None:
    """What a FHIR date, dateTime or instant can mean ('2024' -> Jan 1 to Dec 31; a time with its offset ->
    the instant, and its day in the zone ``zone_minutes`` east of UTC); None if absent or unreadable."""
    if not isinstance(text, str):
        return None
    m = _DATETIME.match(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss, tz = m.groups()
    try:
        year = int(y)
        if mo is None:
            return When(dt.date(year, 1, 1), dt.date(year, 12, 31))
        month = int(mo)
        if d is None:
            return When(dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1]))
        day = dt.date(year, month, int(d))
    except ValueError:
        return None
    if hh is None or tz is None:  # a date, or a time of day without its offset: the day as written
        return When(day, day)
    seconds = int(hh) * 3600 + int(mi) * 60 + int(ss or 0)
    if not (0 <= seconds < DAY_SECONDS):
        return When(day, day)
    at = day.toordinal() * DAY_SECONDS + seconds - _offset_minutes(tz) * 60
    local = _day((at + zone_minutes * 60) // DAY_SECONDS)
    return When(local, local, at)


def date_range(text: Any) -> tuple[dt.date, dt.date] | None:
    """The first and last day a FHIR date or dateTime can mean ('2024' -> Jan 1 to Dec 31); None if absent."""
    w = parse_when(text)
    return (w.lo, w.hi) if w else None


_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?([+-]\d{2}:\d{2})$")


#: The clinical time elements of the resources palsy reads (a Period's start and end with them): the record's
#: zone is counted from these only, never from a server's clocks (meta.lastUpdated, entry.response.lastModified,
#: a Provenance's recorded, Bundle.timestamp), which a review found outvoting the hospital's own offsets.
CLINICAL_TIMES = frozenset({"effectiveDateTime", "effectiveInstant", "effectivePeriod", "onsetDateTime", "onsetPeriod",
                            "performedDateTime", "performedPeriod", "recordedDate", "issued", "authoredOn",
                            "abatementDateTime"})


def record_zone(bundle: Any) -> int:
    """The record's own zone, minutes east of UTC: the UTC offset most of its clinical timestamps carry
    (:data:`CLINICAL_TIMES`), UTC (``Z``, often a server's or a reference laboratory's clock) left out; UTC when no
    timestamp has another offset. Dates without a time are read as days of this zone, and every instant is placed
    on its day in it, so that a cytology stamped 21:30-05:00 and a cell count stamped 02:30Z the next day are one
    LP."""
    counts: dict[int, int] = {}
    stack = [bundle]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        if not isinstance(node, Mapping):
            continue
        for key, value in node.items():
            if key == "meta":
                continue
            if key in CLINICAL_TIMES:
                times = [value.get("start"), value.get("end")] if isinstance(value, Mapping) else [value]
                for t in times:
                    if isinstance(t, str) and len(t) <= 40 and (m := _OFFSET.match(t)):
                        off = _offset_minutes(m.group(1))
                        if off:
                            counts[off] = counts.get(off, 0) + 1
            elif isinstance(value, Mapping | list):
                stack.append(value)
    # the commonest; a tie goes to the offset nearest UTC, then the western one (an order on numbers only)
    return min(counts, key=lambda o: (-counts[o], abs(o), o)) if counts else 0


def years_between(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def months_before(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    if y < dt.MINYEAR:
        return dt.date.min
    if y > dt.MAXYEAR:
        return dt.date.max
    return dt.date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


def when_of(res: Mapping[str, Any], zone: int, *fields: str) -> When | None:
    """The first of ``fields`` that dates ``res`` (a Period by its start)."""
    for f in fields:
        value = res.get(f)
        if isinstance(value, dict):  # a Period: its start
            value = value.get("start")
        r = parse_when(value, zone)
        if r:
            return r
    return None
