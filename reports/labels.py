"""Every name a reader sees, in one place: causes, findings, levels, LPs and tests in plain words.

The words are data: the findings' and levels' labels come from the schema (``priors/schema.yaml``), the
causes' from ``priors/model.yaml`` (``cause_labels``, kept with the draws); this module only puts them
together. A cause or a level without a label is shown by its name with spaces, never dropped.
"""

from __future__ import annotations

from typing import Any

from palsy.model.findings import LP
from palsy.model.schema import Schema


class Labels:
    """The words of one schema and one set of causes."""

    def __init__(self, schema: Schema, cause_labels: dict[str, dict[str, str]] | None = None) -> None:
        self.schema = schema
        self.causes = cause_labels or {}

    @classmethod
    def of(cls, draws: Any) -> Labels:
        """The labels of a posterior (its schema and the causes' labels kept with its draws)."""
        return cls(draws.schema, draws.meta["answer_settings"].get("cause_labels"))

    # -- causes -----------------------------------------------------------------------------------
    def cause(self, cause: str) -> str:
        """A cause in plain words ('Bell's palsy (idiopathic)')."""
        return self.causes.get(cause, {}).get("label") or cause.replace("_", " ")

    def cause_short(self, cause: str) -> str:
        """A cause's short name for a figure ('Bell's palsy')."""
        entry = self.causes.get(cause, {})
        return entry.get("short") or entry.get("label") or cause.replace("_", " ")

    # -- findings ---------------------------------------------------------------------------------
    def finding(self, name: str) -> str:
        """A finding's name on the page ('Side of the facial palsy')."""
        return self.schema.label(name)

    def method(self, name: str) -> str:
        """An LP method in words without its aside ('cytology', 'flow cytometry')."""
        return _first_words(self.schema.lp.method_labels.get(name, name))

    def lp(self, lp: LP) -> str:
        """An LP in words: 'cytology negative, flow cytometry positive (traumatic tap)'."""
        spec = self.schema.lp
        parts = [f"{self.method(m)} {r}" for m, r in lp.results]
        text = ", ".join(parts)
        if lp.traumatic is not None:
            text += f" ({spec.traumatic_labels.get(lp.traumatic, lp.traumatic)})"
        return text

    def value(self, finding: str, value: str, lp: LP | None = None) -> str:
        """A finding's level in words ('both sides'); an LP by :meth:`lp`."""
        if finding == self.schema.lp.name:
            return self.lp(lp) if lp is not None else value
        return self.schema.level_label(finding, value)

    def short_value(self, finding: str, value: str, index: int | None = None, lp: LP | None = None) -> str:
        """A short label for a figure axis: 'LP 1 cytology neg, flow pos', 'MRI mass along the nerve'."""
        if finding == self.schema.lp.name:
            results = lp.results if lp is not None else ()
            abbrev = ", ".join(f"{m} {'pos' if r == 'positive' else 'neg'}" for m, r in results)
            return f"LP {index} {abbrev}" if index is not None else abbrev
        return self.schema.short_label(finding, value)

    def player(self, p: Any) -> str:
        """'LP 2: cytology negative, flow cytometry negative' or 'Side of the facial palsy: both sides'."""
        if p.lp is not None:
            return f"LP {p.index}: {self.lp(p.lp)}"
        return f"{self.finding(p.finding)}: {self.value(p.finding, p.value)}"

    def player_short(self, p: Any) -> str:
        """A player's short label for a figure axis."""
        return self.short_value(p.finding, p.value, p.index, p.lp)

    # -- tests ------------------------------------------------------------------------------------
    def test(self, name: str) -> str:
        """A next test in words ('lumbar puncture with cytology and flow cytometry')."""
        t = self.schema.next_tests.get(name)
        return t.label if t is not None else name.replace("_", " ")

    def result(self, test: str, result: str) -> str:
        """A next test's result in words: an MRI level's label; an LP's results (and profile) spelled out."""
        t = self.schema.next_tests.get(test)
        if t is None:
            return result
        if t.reads != self.schema.lp.name:
            return self.schema.level_label(t.reads, result) if result in self.schema.levels.get(t.reads, ()) else result
        code, _, profile = result.partition("; ")
        pairs = [tuple(part.split("=", 1)) for part in code.split(",") if "=" in part]
        words = ", ".join(f"{_first_words(self.schema.lp.method_labels.get(m, m))} {r}" for m, r in pairs)
        if profile:
            words += f"; {self.schema.level_label(self.schema.profile, profile)}"
        return words


def _first_words(label: str) -> str:
    """'cytology (cytospin)' -> 'cytology': a method's name without its aside."""
    return label.split(" (")[0]
