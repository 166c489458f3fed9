"""The two model variants: which mixture components make up each hypothesis.

``independent``: one component per hypothesis (L, B); findings are conditionally independent given
the class. ``subtype``: L is a mixture of forms (from ``priors/model.yaml``) with weights omega;
findings are independent given the form, hence dependent given L.
"""

from __future__ import annotations

import dataclasses

VARIANTS = ("independent", "subtype")
DEFAULT_VARIANT = "subtype"
HYPOTHESES = ("L", "B")


@dataclasses.dataclass(frozen=True)
class Variant:
    """Components (the ``component`` dim) and the hypothesis each belongs to."""

    name: str
    components: tuple[str, ...]

    @property
    def l_components(self) -> tuple[str, ...]:
        return self.components[:-1]

    @property
    def is_mixture(self) -> bool:
        return len(self.l_components) > 1

    def hypothesis_of(self, component: str) -> str:
        return "B" if component == "B" else "L"


def get(name: str, forms: tuple[str, ...]) -> Variant:
    """The variant called ``name`` (ValueError naming the allowed ones otherwise)."""
    if name == "independent":
        return Variant(name, ("L", "B"))
    if name == "subtype":
        return Variant(name, (*forms, "B"))
    raise ValueError(f"variant {name!r} is not allowed; allowed: {', '.join(VARIANTS)}")
