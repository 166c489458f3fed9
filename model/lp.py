"""The CSF model (docs/design.md §4, "Where a positive CSF comes from"): one lumbar puncture's results
by cytology and flow cytometry, read jointly, written once for numpy and PyTensor (``ops``).

Per LP sample and mixture component k (in this order of events):

1. an *artefact*: the first method (cytology) reads malignant cells that are not there with
   probability ``artefact:cytology`` (reactive cells misread), the second (flow) with ``artefact:flow``,
   independently; a sample with an artefact is read as its artefacts say (so no pattern has probability
   zero: both methods can be wrong on one sample, rarely).
2. otherwise the sample is real. It holds leukaemic cells that a method can detect with probability

       sigma_k = 1 - (1 - q_k) (1 - kappa)

   where q_k = ``detectable`` is the chance that component k's own disease puts them in this sample
   (a structural zero for every cause but infiltration: only leukaemia puts leukaemic cells in the
   CSF) and kappa the chance that a traumatic tap carries circulating blasts into it:
   kappa = ``contamination`` x P(blasts circulate at this LP) x P(this tap is traumatic), each
   probability 0 or 1 when the finding is known (the blasts' from the patient-time share given the
   context otherwise, the same for every cause; the tap's ``traumatic``).
3. given cells, flow sees them with probability ``detects:flow``; given flow sees them, cytology does
   with ``detects:cytology|flow``; given flow does not, cytology does (cells that no method detects
   are "not detectable"). Flow-only positives are common, cytology-only positives rare.

Every pattern's probability is linear in sigma_k with a slope of the pattern's sign (positive
patterns up, the negative one down) and sigma is larger under every infiltration component than under
any other component (q >= 0 = the others' q; kappa the same for all): so, by construction, a positive
result by any method never lowers and a negative never raises P(infiltration), whatever else is known.

Patterns are indexed ``2 r_first + r_second`` (r = 0 negative, 1 positive): [(-,-), (-,+), (+,-), (+,+)].
An observation is a 0/1 mask over the four patterns (a method not done is summed over).
"""

from __future__ import annotations

import dataclasses

import numpy as np

N_PATTERNS = 4


@dataclasses.dataclass(frozen=True)
class Index:
    """Where the CSF model's nodes sit in theta's node axis, and the two methods (first, second)."""

    methods: tuple[str, str]
    detectable: int
    detects_second: int
    detects_first_given_second: int
    artefact_first: int
    artefact_second: int
    contamination: int
    traumatic: int

    @classmethod
    def of(cls, structure) -> Index:
        first, second = structure.methods
        n = structure.lp_node
        return cls((first, second), n["detectable"], n[f"detects:{second}"], n[f"detects:{first}|{second}"],
                   n[f"artefact:{first}"], n[f"artefact:{second}"], n["contamination"], n["traumatic"])


def patterns(ops, theta, ix: Index, kappa):
    """P(pattern | component) (..., component, 4) from theta (..., component, node) and ``kappa``
    (broadcastable to (..., component)), the chance that contamination puts blasts in the sample."""
    q = theta[..., ix.detectable]
    a1, a2 = theta[..., ix.artefact_first], theta[..., ix.artefact_second]
    d2, d12 = theta[..., ix.detects_second], theta[..., ix.detects_first_given_second]
    sigma = 1.0 - (1.0 - q) * (1.0 - kappa)
    real = (1.0 - a1) * (1.0 - a2)
    return ops.stack([real * (1.0 - sigma),
                      (1.0 - a1) * a2 + real * sigma * d2 * (1.0 - d12),
                      a1 * (1.0 - a2) + real * sigma * (1.0 - d2),
                      a1 * a2 + real * sigma * d2 * d12], axis=-1)


def obs_mask(results: dict[str, str], methods: tuple[str, str]) -> np.ndarray:
    """The 0/1 mask over the four patterns of an LP's results (a method not done is summed over)."""
    first, second = methods
    mask = np.zeros(N_PATTERNS)
    for p in range(N_PATTERNS):
        r1, r2 = ("negative", "positive")[p >> 1], ("negative", "positive")[p & 1]
        if results.get(first, r1) == r1 and results.get(second, r2) == r2:
            mask[p] = 1.0
    return mask


def positive_mask(methods_done: tuple[str, ...], methods: tuple[str, str]) -> np.ndarray:
    """The patterns in which at least one of ``methods_done`` reads malignant cells (the LP's class)."""
    first, second = methods
    mask = np.zeros(N_PATTERNS)
    for p in range(N_PATTERNS):
        if (first in methods_done and p >> 1) or (second in methods_done and p & 1):
            mask[p] = 1.0
    return mask


def method_positive(method: str, methods: tuple[str, str]) -> np.ndarray:
    """The patterns in which ``method`` reads malignant cells."""
    return obs_mask({method: "positive"}, methods)


def pattern_sets(methods: tuple[str, str]) -> dict[str, np.ndarray]:
    """The sets of patterns an evidence entry may count, by name: ``<method>_positive``,
    ``any_positive``, ``all_positive`` and ``all``."""
    out = {f"{m}_positive": method_positive(m, methods) for m in methods}
    out["any_positive"] = positive_mask(methods, methods)
    out["all_positive"] = obs_mask({m: "positive" for m in methods}, methods)
    out["all"] = np.ones(N_PATTERNS)
    return out


def kappa(theta, ix: Index, blasts, traumatic):
    """The chance that a traumatic tap puts circulating blasts in the sample: ``contamination`` x
    P(blasts circulate) x P(traumatic tap), each given (0 or 1) or a probability. ``traumatic=None``
    means unknown: the ``traumatic`` node's rate."""
    p_trauma = theta[..., ix.traumatic] if traumatic is None else traumatic
    return theta[..., ix.contamination] * blasts * p_trauma
