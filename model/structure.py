"""The model's structure derived from the schema: items, tree nodes, incidence matrices, strata.

Pure numpy constants, shared by the PyMC model, the conjugate posterior and the patient answer.

An *item* is a categorical variable the trees model: each presentation finding, the MRI pattern, one
item per CSF method (``csf_cytology``, ``csf_flow``; levels negative / positive) and the first LP's
CSF profile given that LP's result (``csf_profile_negative``, ``csf_profile_positive``). Each item
is a tree of conditional Beta *nodes* (DESIGN §4): node ``(item, success, of)`` is
P(level in success | level in of). P(level) is the product along its path, so

    log P(level) = A_s[level] . log(theta) + A_f[level] . log(1 - theta)

with 0/1 incidence matrices ``A_s`` and ``A_f``. The context findings are not trees: they enter
through the rate model (:mod:`palsy.model.likelihood`) over the strata, every combination of their levels.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from palsy.model import findings as F

#: Presentation findings modelled as one tree each (the csf and its profile are items of their own).
TREE_FINDINGS: tuple[str, ...] = ("onset", "laterality", "eighth_nerve", "other_cranial_nerves",
                                  "peripheral_nerves", "vesicles", "otoscopy", "mri")

ITEMS: dict[str, tuple[str, ...]] = {
    **{name: F.LEVELS[name] for name in TREE_FINDINGS if name != "mri"},
    "csf_cytology": F.CSF_RESULTS,
    "csf_flow": F.CSF_RESULTS,
    "csf_profile_negative": F.LEVELS["csf_profile"],
    "csf_profile_positive": F.LEVELS["csf_profile"],
    "mri": F.LEVELS["mri"],
}

_MRI = dict(zip(("normal", "facial", "vii_viii", "otomastoid", "multiple", "mass"), F.LEVELS["mri"], strict=True))
_PROFILE = F.LEVELS["csf_profile"]


@dataclasses.dataclass(frozen=True)
class Node:
    """P(level in ``success`` | level in ``of``) for ``item``."""

    item: str
    success: tuple[str, ...]
    of: tuple[str, ...]

    @property
    def name(self) -> str:
        of = "" if self.of == ITEMS[self.item] else f" | {'/'.join(self.of)}"
        return f"{self.item}: {'/'.join(self.success)}{of}"


def _binary(item: str) -> Node:
    return Node(item, (ITEMS[item][1],), ITEMS[item])


def _profile_nodes(item: str) -> tuple[Node, Node]:
    return (Node(item, _PROFILE[1:], _PROFILE), Node(item, (_PROFILE[2],), _PROFILE[1:]))


NODES: tuple[Node, ...] = (
    *(_binary(name) for name in TREE_FINDINGS if name != "mri"),
    _binary("csf_cytology"),
    _binary("csf_flow"),
    *_profile_nodes("csf_profile_negative"),
    *_profile_nodes("csf_profile_positive"),
    Node("mri", (_MRI["multiple"], _MRI["mass"]), F.LEVELS["mri"]),
    Node("mri", (_MRI["mass"],), (_MRI["multiple"], _MRI["mass"])),
    Node("mri", (_MRI["otomastoid"],), (_MRI["normal"], _MRI["facial"], _MRI["vii_viii"], _MRI["otomastoid"])),
    Node("mri", (_MRI["facial"], _MRI["vii_viii"]), (_MRI["normal"], _MRI["facial"], _MRI["vii_viii"])),
    Node("mri", (_MRI["vii_viii"],), (_MRI["facial"], _MRI["vii_viii"])),
)
NODE_NAMES: tuple[str, ...] = tuple(n.name for n in NODES)

#: Flat index of every (item, level).
LEVEL_KEYS: tuple[tuple[str, str], ...] = tuple((i, lv) for i, lvs in ITEMS.items() for lv in lvs)
LEVEL_INDEX: dict[tuple[str, str], int] = {k: j for j, k in enumerate(LEVEL_KEYS)}
N_LEVELS = len(LEVEL_KEYS)


def _incidence() -> tuple[np.ndarray, np.ndarray]:
    a_s = np.zeros((N_LEVELS, len(NODES)))
    a_f = np.zeros((N_LEVELS, len(NODES)))
    for (item, level), j in LEVEL_INDEX.items():
        for k, node in enumerate(NODES):
            if node.item == item and level in node.of:
                (a_s if level in node.success else a_f)[j, k] = 1.0
    return a_s, a_f


A_SUCCESS, A_FAILURE = _incidence()


def csf_item(method: str) -> str:
    """The item of an LP read by ``method``."""
    return f"csf_{method}"


def profile_item(first_result: str) -> str:
    """The item of the CSF profile given the first LP's result."""
    return f"csf_profile_{first_result}"


def item_of(finding: str, method: str | None = None, given: str | None = None) -> str:
    """The tree item of an evidence entry on ``finding``."""
    if finding == "csf":
        return csf_item(method or "")
    if finding == "csf_profile":
        return profile_item(given or "")
    return finding


def group_mask(item: str, levels: tuple[str, ...] | list[str]) -> np.ndarray:
    """A 0/1 vector over all levels marking ``levels`` of ``item``."""
    mask = np.zeros(N_LEVELS)
    for lv in levels:
        mask[LEVEL_INDEX[(item, lv)]] = 1.0
    return mask


def find_node(item: str, success: tuple[str, ...], of: tuple[str, ...]) -> int | None:
    """Index of the node ``P(success | of)`` of ``item``, or None if the tree has no such node."""
    for k, node in enumerate(NODES):
        if node.item == item and set(node.success) == set(success) and set(node.of) == set(of):
            return k
    return None


def group_path(item: str, group: tuple[str, ...]) -> list[tuple[int, bool]] | None:
    """The nodes (index, success?) whose product is P(group), or None if the group splits a node.

    A group that is a union of whole branches (a level, or a partly known value such as
    ``beyond_facial``) has P(group) equal to a product of node probabilities, which is what makes
    the posterior conjugate.
    """
    path = []
    gset = set(group)
    for k, node in enumerate(NODES):
        if node.item != item or not gset <= set(node.of):
            continue
        inside = gset & set(node.success)
        if inside == gset:
            path.append((k, True))
        elif not inside:
            path.append((k, False))
        else:
            return None
    return path


# --- strata of the rate model --------------------------------------------------------------------

CONTEXT: tuple[str, ...] = F.CONTEXT
CONTEXT_LEVELS: dict[str, tuple[str, ...]] = {name: F.LEVELS[name] for name in CONTEXT}
STRATA_SHAPE: tuple[int, ...] = tuple(len(CONTEXT_LEVELS[n]) for n in CONTEXT)
N_STRATA = int(np.prod(STRATA_SHAPE))
#: Every stratum as a tuple of levels, in the row-major order of ``STRATA_SHAPE``.
STRATA: tuple[tuple[str, ...], ...] = tuple(itertools.product(*(CONTEXT_LEVELS[n] for n in CONTEXT)))
LINEAGES: tuple[str, ...] = CONTEXT_LEVELS["lineage"]
REMISSIONS: tuple[str, ...] = CONTEXT_LEVELS["remission"]


def expand(finding: str, value: str) -> tuple[str, ...]:
    """The levels a (possibly partly known) value stands for."""
    partial = F.PARTIAL_LEVELS.get(finding, {})
    return partial[value] if value in partial else (value,)


def stratum_mask(values: dict[str, str | None] | None = None) -> np.ndarray:
    """A 0/1 vector over the strata compatible with (possibly partly known) context values."""
    values = values or {}
    mask = np.ones(STRATA_SHAPE)
    for axis, name in enumerate(CONTEXT):
        v = values.get(name)
        if v is None:
            continue
        keep = np.array([lv in expand(name, v) for lv in CONTEXT_LEVELS[name]], float)
        shape = [1] * len(CONTEXT)
        shape[axis] = -1
        mask = mask * keep.reshape(shape)
    return mask.ravel()


def level_indicator(name: str) -> np.ndarray:
    """(stratum, level) 0/1: which level of context finding ``name`` each stratum has."""
    axis = CONTEXT.index(name)
    out = np.zeros((N_STRATA, len(CONTEXT_LEVELS[name])))
    for s, levels in enumerate(STRATA):
        out[s, CONTEXT_LEVELS[name].index(levels[axis])] = 1.0
    return out
