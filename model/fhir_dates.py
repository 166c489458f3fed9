"""FHIR dates, dateTimes and instants as :mod:`palsy.model.fhir` reads them: what each can mean (a day, a
range of days for a partial date, an instant where a time and its offset are given), the day an instant falls on
(its own offset's, or for a UTC stamp the record's zone at that time), and day arithmetic held to the calendar's ends
(split from ``fhir.py``, December 2026)."""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Iterator, Mapping
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
    """What a FHIR date, dateTime or instant can mean: its first and last day (an instant's day in its own offset,
    or in the record's zone when it is stamped in UTC: :class:`Zones`) and, when a time of day is given with its
    offset, the instant itself (seconds since 0001-01-01T00:00Z: integers, so no date at the calendar's ends can
    overflow)."""

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


def parse_when(text: Any, zone: int | Zones = 0) -> When | None:
    """What a FHIR date, dateTime or instant can mean ('2024' -> Jan 1 to Dec 31; a time with its offset -> the
    instant, and its day: the day written in it when its offset is not UTC, else its day in ``zone``, minutes east
    of UTC or the record's :class:`Zones`); None if absent or unreadable."""
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
    own = _offset_minutes(tz)
    at = day.toordinal() * DAY_SECONDS + seconds - own * 60
    if own:
        # the day written in the stamp: its offset is the zone it was taken in, which a record that crosses a
        # daylight-saving change does not share with its other stamps (00:30-04:00 had been placed on the day before)
        return When(day, day, at)
    offset = zone.at(at) if isinstance(zone, Zones) else zone
    local = _day((at + offset * 60) // DAY_SECONDS)
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


def _clinical_stamps(bundle: Any) -> Iterator[tuple[int, int]]:
    """(instant, offset in minutes east of UTC) of every clinical timestamp of ``bundle`` (:data:`CLINICAL_TIMES`,
    a Period's start and end) that gives a time of day with a numeric offset (``Z`` is none: UTC)."""
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
                    if isinstance(t, str) and len(t) <= 40 and (m := _OFFSET.match(t)) and \
                            (w := parse_when(t)) is not None and w.at is not None:
                        yield w.at, _offset_minutes(m.group(1))
            elif isinstance(value, Mapping | list):
                stack.append(value)


def _commonest(offsets: list[int]) -> int:
    """The commonest of ``offsets``; a tie goes to the offset nearest UTC, then the western one (an order on numbers
    only); UTC when there is none."""
    counts: dict[int, int] = {}
    for off in offsets:
        counts[off] = counts.get(off, 0) + 1
    return min(counts, key=lambda o: (-counts[o], abs(o), o)) if counts else 0


def record_zone(bundle: Any) -> int:
    """The record's commonest zone, minutes east of UTC: the UTC offset most of its clinical timestamps carry
    (:data:`CLINICAL_TIMES`), UTC (``Z``, often a server's or a reference laboratory's clock) left out; UTC when no
    timestamp has another offset. :class:`Zones` places a UTC stamp by the offsets nearest it in time, and this one
    breaks their ties."""
    return _commonest([off for _, off in _clinical_stamps(bundle) if off])


@functools.cache
def _tz_zones() -> tuple[zoneinfo.ZoneInfo, ...]:
    """Every zone of the machine's time-zone database (none when it has none: then nothing is inferred)."""
    out = []
    for name in sorted(zoneinfo.available_timezones()):
        try:
            out.append(zoneinfo.ZoneInfo(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            continue
    return tuple(out)


#: The years whose zones :func:`_zero_zones` looks through for every year: a zone at +00:00 only before 1970 (Paris
#: between the wars) is not among them. Looking through all ~600 zones for each year a record names had cost 2 ms a
#: year: a bundle of stamps in thousands of years took seconds of the service (s18 review).
_ZERO_YEARS = range(1970, 2041)


@functools.cache
def _ever_zero() -> tuple[zoneinfo.ZoneInfo, ...]:
    """The zones of places a hospital may be in (not Antarctica's stations, not ``Etc``, the machine's ``localtime``
    or ``Factory``) at UTC+0 on 15 January or 15 July of some year of :data:`_ZERO_YEARS`."""
    days = [dt.date(year, month, 15).toordinal() * DAY_SECONDS for year in _ZERO_YEARS for month in (1, 7)]
    return tuple(z for z in _tz_zones() if not str(z.key).startswith(("Antarctica/", "Etc/"))
                 and z.key not in ("localtime", "Factory") and any(_offset_in(z, at) == 0 for at in days))


@functools.lru_cache(maxsize=256)
def _zero_zones(year: int) -> tuple[zoneinfo.ZoneInfo, ...]:
    """The zones of places a hospital may be in (:func:`_ever_zero`) at UTC+0 on 15 January or 15 July of ``year``:
    those whose local time a stamp at +00:00 may be written in (London, Dublin, Lisbon in winter; Accra, Dakar,
    Reykjavik all year). A zone at +00:00 only on other days (Casablanca's during Ramadan) is not among them."""
    days = [dt.date(year, month, 15).toordinal() * DAY_SECONDS for month in (1, 7)]
    return tuple(z for z in _ever_zero() if any(_offset_in(z, at) == 0 for at in days))


def _offset_in(zone: dt.tzinfo, instant: int) -> int | None:
    """The offset (minutes east of UTC) of ``zone`` at ``instant`` (None beyond the calendar datetime can hold)."""
    try:
        moment = dt.datetime.fromordinal(instant // DAY_SECONDS).replace(tzinfo=dt.UTC) + \
            dt.timedelta(seconds=instant % DAY_SECONDS)
        delta = moment.astimezone(zone).utcoffset()
    except (ValueError, OverflowError):
        return None
    return int(delta.total_seconds()) // 60 if delta is not None else None


class Zones:
    """The record's zones over time: where a stamp in UTC (``Z``, ``+00:00``: a server's or a reference laboratory's
    clock) falls, the offset of the record's own non-UTC clinical stamp nearest to it in time (equally near ones of
    different offsets: the record's commonest, :func:`record_zone`), so that a cytology stamped 21:30-05:00 and a
    cell count stamped 02:30Z the next day are one LP, and a UTC stamp of a record that crosses a daylight-saving
    change takes the offset of its side of it (one zone for the whole record had been used until s17). A UTC stamp
    between two stamps of different offsets (the change is somewhere between them) takes the offset of its own side
    of the change where the time-zone database tells it: every zone whose offsets at those two stamps are theirs
    gives it the same offset (a stamp 23:30 EST, the day after the US fall-back, had taken the -04:00 of a stamp
    before the change rather than the -05:00 of one 18 days later); else the nearest's. A UTC stamp that may be the
    record's own local time (a zone at the offsets of its nearest stamps is at +00:00 then: London's, Lisbon's
    winter beside their +01:00 summer stamps) is read in its own offset, on the day written in it
    (:meth:`_may_be_local`). A stamp with its own offset is on the day written in it (:func:`parse_when`); UTC when
    the record has no other offset."""

    def __init__(self, stamps: list[tuple[int, int]] | None = None) -> None:
        own = sorted({(at, off) for at, off in stamps or () if off})
        self._at = [at for at, _ in own]
        self._off = [off for _, off in own]
        self.common = _commonest([off for _, off in stamps or () if off])
        self._between: dict[tuple[int, int], list[dt.tzinfo]] = {}
        self._zero: dict[int, bool] = {}

    @classmethod
    def of(cls, bundle: Any) -> Zones:
        """The zones of ``bundle``'s clinical timestamps (never a server's clocks: :data:`CLINICAL_TIMES`)."""
        return cls(list(_clinical_stamps(bundle)))

    def at(self, instant: int) -> int:
        """The offset (minutes east of UTC) in which a UTC stamp at ``instant`` is read: UTC itself when it may be
        the record's local time (:meth:`_may_be_local`); else its own side of a change between the record's stamps
        where the time-zone database tells it, else that of the non-UTC stamps nearest it in time."""
        if not self._at:
            return 0
        i = bisect.bisect_left(self._at, instant)
        near = [j for j in (i - 1, i) if 0 <= j < len(self._at)]
        best = min(abs(self._at[j] - instant) for j in near)
        if best and self._may_be_local(near, instant):
            return 0
        if best and len(near) == 2 and (side := self._side(i - 1, i, instant)) is not None:
            return side
        # every stamp that near (stamps of one instant in two offsets, or equally near on either side)
        lo, hi = bisect.bisect_left(self._at, instant - best), bisect.bisect_right(self._at, instant + best)
        offsets = {self._off[j] for j in range(lo, hi) if abs(self._at[j] - instant) == best}
        return self.common if self.common in offsets else min(offsets, key=lambda o: (abs(o), o))

    def _may_be_local(self, near: list[int], instant: int) -> bool:
        """Whether a stamp at +00:00 at ``instant`` may be written in the record's own local time: some zone of a
        place a hospital may be in (:func:`_zero_zones`) is at +00:00 then and at the offsets of the record's non-UTC
        stamps nearest it (``near``: one each side, where there is one of one offset). London's +01:00 summer stamps
        around a January stamp at +00:00 make it London's (or Dublin's, Lisbon's) winter time, its own day; a record
        whose nearest stamps are -05:00 (no zone at +00:00 is) reads it as a server's or laboratory's UTC clock,
        placed in the record's zone. Until s18 every +00:00 stamp was such a clock: a London winter stamp at 23:30,
        placed by a summer stamp's +01:00, fell on the next day (a dose 29 days before onset read as 28)."""
        if instant not in self._zero:
            sides = []
            for j in near:
                at = self._at[j]
                offs = {self._off[k] for k in range(bisect.bisect_left(self._at, at), bisect.bisect_right(self._at, at))}
                if len(offs) == 1:
                    sides.append((at, offs.pop()))
            year = _day(instant // DAY_SECONDS).year
            self._zero[instant] = bool(sides) and any(
                _offset_in(z, instant) == 0 and all(_offset_in(z, at) == off for at, off in sides)
                for z in _zero_zones(year))
        return self._zero[instant]

    def _side(self, before: int, after: int, instant: int) -> int | None:
        """The offset at ``instant`` of every zone whose offsets at the stamps ``before`` and ``after`` (of one
        offset each, and different) are theirs, when they all give the same one, of the two; else None."""
        at_a, at_b = self._at[before], self._at[after]
        offs_a = {self._off[j] for j in range(bisect.bisect_left(self._at, at_a), bisect.bisect_right(self._at, at_a))}
        offs_b = {self._off[j] for j in range(bisect.bisect_left(self._at, at_b), bisect.bisect_right(self._at, at_b))}
        if len(offs_a) != 1 or len(offs_b) != 1 or offs_a == offs_b:
            return None
        (off_a,), (off_b,) = offs_a, offs_b
        if (at_a, at_b) not in self._between:
            self._between[(at_a, at_b)] = [z for z in _tz_zones()
                                           if _offset_in(z, at_a) == off_a and _offset_in(z, at_b) == off_b]
        said = {_offset_in(z, instant) for z in self._between[(at_a, at_b)]}
        return said.pop() if len(said) == 1 and said <= {off_a, off_b} else None


def years_between(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def months_before(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    if y < dt.MINYEAR:
        return dt.date.min
    if y > dt.MAXYEAR:
        return dt.date.max
    return dt.date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


def when_of(res: Mapping[str, Any], zone: int | Zones, *fields: str) -> When | None:
    """The first of ``fields`` that dates ``res`` (a Period by its start)."""
    for f in fields:
        value = res.get(f)
        if isinstance(value, dict):  # a Period: its start
            value = value.get("start")
        r = parse_when(value, zone)
        if r:
            return r
    return None
