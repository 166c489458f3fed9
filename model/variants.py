"""The two model variants: which mixture components make up each cause.

``independent``: one component per cause; findings are conditionally independent given the cause.
``subtype``: infiltration is a mixture of forms (from ``priors/model.yaml``) with weights omega that
depend on the lineage; findings are independent given the form, hence dependent given infiltration.
Every other cause is one component in both.
"""

from __future__ import annotations

import dataclasses

VARIANTS = ("independent", "subtype")
DEFAULT_VARIANT = "subtype"
INFILTRATION = "infiltration"


@dataclasses.dataclass(frozen=True)
class Variant:
    """Components (the ``component`` dim), the cause of each, and the forms among them."""

    name: str
    components: tuple[str, ...]
    component_causes: tuple[str, ...]
    causes: tuple[str, ...]
    forms: tuple[str, ...]

    @property
    def is_mixture(self) -> bool:
        return self.name == "subtype"

    @property
    def infiltration_components(self) -> tuple[int, ...]:
        return tuple(k for k, c in enumerate(self.component_causes) if c == INFILTRATION)

    def components_of(self, cause: str, form: str | None = None) -> tuple[int, ...]:
        """Indices of the components of ``cause`` (of one ``form`` of infiltration, if given)."""
        if form is not None and self.is_mixture:
            return (self.components.index(form),)
        return tuple(k for k, c in enumerate(self.component_causes) if c == cause)


def get(name: str, causes: tuple[str, ...], forms: tuple[str, ...]) -> Variant:
    """The variant called ``name`` (ValueError naming the allowed ones otherwise)."""
    if INFILTRATION not in causes:
        raise ValueError(f"causes {causes!r} must include {INFILTRATION!r}")
    if name == "independent":
        return Variant(name, causes, causes, causes, forms)
    if name == "subtype":
        comps, comp_causes = [], []
        for c in causes:
            if c == INFILTRATION:
                comps += forms
                comp_causes += [c] * len(forms)
            else:
                comps.append(c)
                comp_causes.append(c)
        return Variant(name, tuple(comps), tuple(comp_causes), causes, forms)
    raise ValueError(f"variant {name!r} is not allowed; allowed: {', '.join(VARIANTS)}")
