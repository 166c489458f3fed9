"""The model's structure derived from the schema: items, tree nodes, incidence matrices, strata.

Pure numpy constants, shared by the PyMC model, the conjugate posterior and the patient answer.

An *item* is a categorical variable the trees model: each binary finding, the MRI pattern, and
one item per CSF method (``csf_cytology``, ``csf_flow``; levels negative / positive). Each item is a
tree of conditional Beta *nodes* (DESIGN §4): node ``(item, success, of)`` is
P(level in success | level in of). P(level) is the product along its path, so

    log P(level) = A_s[level] . log(theta) + A_f[level] . log(1 - theta)

with 0/1 incidence matrices ``A_s`` and ``A_f``. Lineage and remission are not trees: they enter
through the stratified rate model (:mod:`model.likelihood`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from model import findings as F

ITEMS: dict[str, tuple[str, ...]] = {
    "laterality": F.LEVELS["laterality"],
    "other_cranial_nerves": F.LEVELS["other_cranial_nerves"],
    "peripheral_nerves": F.LEVELS["peripheral_nerves"],
    "csf_cytology": F.CSF_RESULTS,
    "csf_flow": F.CSF_RESULTS,
    "mri": F.LEVELS["mri"],
}
TREE_FINDINGS = ("laterality", "other_cranial_nerves", "peripheral_nerves", "mri")

_MRI = F.LEVELS["mri"]


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


NODES: tuple[Node, ...] = (
    Node("laterality", ("bilateral",), ITEMS["laterality"]),
    Node("other_cranial_nerves", ("one_or_more",), ITEMS["other_cranial_nerves"]),
    Node("peripheral_nerves", ("one_or_more",), ITEMS["peripheral_nerves"]),
    Node("csf_cytology", ("positive",), F.CSF_RESULTS),
    Node("csf_flow", ("positive",), F.CSF_RESULTS),
    Node("mri", (_MRI[2], _MRI[3]), _MRI),
    Node("mri", (_MRI[3],), (_MRI[2], _MRI[3])),
    Node("mri", (_MRI[1],), (_MRI[0], _MRI[1])),
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

LINEAGES: tuple[str, ...] = F.LEVELS["lineage"]
REMISSIONS: tuple[str, ...] = F.LEVELS["remission"]
REFERENCE_REMISSION = "remission_on_treatment"
MULTIPLIED_REMISSIONS: tuple[str, ...] = tuple(r for r in REMISSIONS if r != REFERENCE_REMISSION)


def expand(finding: str, value: str) -> tuple[str, ...]:
    """The levels a (possibly partly known) value stands for."""
    partial = F.PARTIAL_LEVELS.get(finding, {})
    return partial[value] if value in partial else (value,)


def stratum_mask(lineage: str | None, remission: str | None) -> np.ndarray:
    """A (lineage, remission) 0/1 matrix of strata compatible with partly known values."""
    lin = np.array([lineage is None or lv in expand("lineage", lineage) for lv in LINEAGES], float)
    rem = np.array([remission is None or r in expand("remission", remission) for r in REMISSIONS], float)
    return lin[:, None] * rem[None, :]
