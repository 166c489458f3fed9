"""What a card (and the report it links to) says of the record, in the schema's words: the findings the record
did not state and the mapping's notes, each finding named by its label ("Side of the facial palsy"), never by
its identifier (``laterality``, ``csf_profile``: s17 review item 16g, the card had shown them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from palsy.model import fhir as X
from palsy.model.schema import Schema

#: A note that begins with the findings it is about: ``csf_profile, circulating_blasts: ...``.
_LEADING_NAMES = re.compile(r"^([a-z][a-z0-9_]*(?:, [a-z][a-z0-9_]*)*): ")


def labelled(note: str, schema: Schema) -> str:
    """``note`` with the findings it begins with named by their labels (a note about findings the schema does
    not hold is left as it is)."""
    m = _LEADING_NAMES.match(note)
    if m is None:
        return note
    names = m.group(1).split(", ")
    if not all(n in schema.findings for n in names):
        return note
    return f"{' and '.join(schema.label(n) for n in names)}: {note[m.end():]}"


def not_prefetched(missing: list[str], failed: list[str], failed_words: str, not_found: Iterable[str],
                   table: X.Table, schema: Schema) -> list[str]:
    """The card's note when optional prefetch keys were not sent (``missing``) or the record could not answer
    them (``failed``, said as ``failed_words``), and an exposure such a key could hold is not found."""
    left = [*missing, *failed]
    exposures = sorted({r.finding for r in table.rows if r.role == "medication"} & set(not_found))
    if not left or not exposures:
        return []
    # what each pair of keys finds: the note names what was left out, and only that (a second review, s16: a
    # client of the day before, sending the by-reference keys, was told that doses by reference were not read)
    what = []
    if any(k.endswith("_by_reference") for k in left):
        what.append("a dose given or ordered by medicationReference")
    if any(k.endswith("_by_ingredient") for k in left):
        what.append("a dose of a Medication coded only through its ingredient")
    why = [f"the prefetch {' and '.join(missing)} was not sent"] if missing else []
    why += [failed_words] if failed else []
    return [f"{'; '.join(schema.label(e) for e in exposures)}: {' and '.join(why)}, so {' or '.join(what)} is not "
            f"read"]
