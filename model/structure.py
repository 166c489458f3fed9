"""The model's structure derived from a schema: items, tree nodes, incidence matrices, strata.

Pure numpy, shared by the PyMC model, the conjugate posterior and the patient answer. One
:class:`Structure` per schema (:func:`of` caches it).

An *item* is a categorical variable the trees model: each tree finding of the schema (presentation
and imaging) and the first LP's CSF profile given that LP's class (``csf_profile_negative``: no
malignant cells by the methods done; ``csf_profile_positive``: malignant cells by at least one). Each
item is a tree of conditional Beta *nodes* (docs/design.md §4): node ``(item, success, of)`` is
P(level in success | level in of). P(level) is the product along its path, so

    log P(level) = A_s[level] . log(theta) + A_f[level] . log(1 - theta)

with 0/1 incidence matrices ``A_s`` and ``A_f``.

The lumbar punctures are not a tree: their nodes (``lp_nodes``) are the parameters of the CSF model of
:mod:`palsy.model.lp` (malignant cells detectable in a sample, what each method sees of them, artefacts,
contamination by a traumatic tap, how often a tap is traumatic). Every node has a *sharing*: its own
value per component (``component``), one value for every component (``shared``: a property of the
laboratory, or the profile after a positive LP, which says nothing about the cause), or a value per
infiltration component and a structural zero for the others (``infiltration``: only leukaemia puts
leukaemic cells in the CSF). The free parameters are one per (component, node) of ``component`` nodes,
one per ``shared`` node and one per infiltration component of ``infiltration`` nodes
(:meth:`Structure.assembly`).

The context findings are not trees: they enter through the rate model (:mod:`palsy.model.likelihood`)
over the strata, every combination of their levels in the schema's order.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

from palsy.model.schema import Schema


@dataclasses.dataclass(frozen=True)
class Node:
    """P(level in ``success`` | level in ``of``) for ``item``."""

    item: str
    success: tuple[str, ...]
    of: tuple[str, ...]
    all_levels: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    sharing: str = "component"  # component | shared | infiltration (see the module's docstring)
    key: str | None = None  # an LP node's name (it has no levels)

    @property
    def name(self) -> str:
        if self.key is not None:
            return f"{self.item}: {self.key}"
        of = "" if self.of == self.all_levels else f" | {'/'.join(self.of)}"
        return f"{self.item}: {'/'.join(self.success)}{of}"


SHARINGS = ("component", "shared", "infiltration")


def lp_node_keys(methods: tuple[str, ...]) -> dict[str, str]:
    """The CSF model's nodes (key -> sharing) for the two methods of an LP (the second the more
    sensitive: flow cytometry). See :mod:`palsy.model.lp` for their meaning."""
    first, second = methods
    return {"detectable": "infiltration", f"detects:{second}": "shared", f"detects:{first}|{second}": "shared",
            f"artefact:{first}": "shared", f"artefact:{second}": "shared", "contamination": "shared",
            "traumatic": "shared"}


class Structure:
    """Items, nodes, incidence matrices and strata of one schema."""

    def __init__(self, schema: Schema) -> None:
        sc = self.schema = schema
        lp = sc.lp
        profile = sc.by_name[sc.profile]
        self.tree_findings: tuple[str, ...] = sc.tree_findings
        self.methods: tuple[str, ...] = lp.methods
        self.results: tuple[str, ...] = lp.results
        self.profile_finding: str = sc.profile
        if len(lp.methods) != 2:
            raise ValueError(f"the CSF model reads two methods per LP, not {lp.methods}")
        items: dict[str, tuple[str, ...]] = {name: sc.levels[name] for name in sc.tree_findings}
        trees = {name: sc.by_name[name].tree for name in sc.tree_findings}
        sharing = {name: "component" for name in sc.tree_findings}
        for r, share in zip(lp.results, ("component", "shared"), strict=True):
            # after a positive LP the profile is the malignant cells': the same whatever the cause
            items[self.profile_item(r)] = profile.levels
            trees[self.profile_item(r)] = profile.tree
            sharing[self.profile_item(r)] = share
        self.items: dict[str, tuple[str, ...]] = items
        nodes = [Node(item, success, of, items[item], sharing[item]) for item, tree in trees.items() for success, of in tree]
        self.lp_keys: dict[str, str] = lp_node_keys(lp.methods)
        nodes += [Node(lp.name, (), (), (), share, key) for key, share in self.lp_keys.items()]
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.lp_node: dict[str, int] = {n.key: k for k, n in enumerate(self.nodes) if n.key is not None}
        #: The tree nodes come first (every one of them free, never a structural zero): the level
        #: probabilities use only these.
        self.n_tree_nodes = len(self.nodes) - len(self.lp_keys)
        self.node_names: tuple[str, ...] = tuple(n.name for n in self.nodes)
        self.level_keys: tuple[tuple[str, str], ...] = tuple((i, lv) for i, lvs in items.items() for lv in lvs)
        self.level_index: dict[tuple[str, str], int] = {k: j for j, k in enumerate(self.level_keys)}
        self.n_levels = len(self.level_keys)
        a_s = np.zeros((self.n_levels, self.n_tree_nodes))
        a_f = np.zeros((self.n_levels, self.n_tree_nodes))
        for (item, level), j in self.level_index.items():
            for k, node in enumerate(self.nodes[:self.n_tree_nodes]):
                if node.item == item and level in node.of:
                    (a_s if level in node.success else a_f)[j, k] = 1.0
        self.a_success, self.a_failure = a_s, a_f
        # strata of the rate model
        self.context: tuple[str, ...] = sc.context
        self.context_levels: dict[str, tuple[str, ...]] = {n: sc.levels[n] for n in sc.context}
        self.strata_shape: tuple[int, ...] = tuple(len(self.context_levels[n]) for n in sc.context)
        self.n_strata = int(np.prod(self.strata_shape))
        #: Every stratum as a tuple of levels, in the row-major order of ``strata_shape``.
        self.strata: tuple[tuple[str, ...], ...] = tuple(itertools.product(*(self.context_levels[n] for n in sc.context)))

    # -- items and free parameters ----------------------------------------------------------------
    def profile_item(self, first_class: str) -> str:
        """The item of the CSF profile given the first LP's class (``negative``: no malignant cells by
        the methods done; ``positive``: malignant cells by at least one)."""
        return f"{self.profile_finding}_{first_class}"

    def item_of(self, finding: str, given: str | None = None) -> str:
        """The tree item of an evidence entry on ``finding``."""
        if finding == self.profile_finding:
            return self.profile_item(given or "")
        return finding

    def free_parameters(self, components: tuple[str, ...], infiltration: tuple[int, ...]) -> list[tuple[int | None, int]]:
        """The free parameters of the nodes, in order: (component or None when shared, node)."""
        out: list[tuple[int | None, int]] = []
        for j, node in enumerate(self.nodes):
            if node.sharing == "shared":
                out.append((None, j))
            else:
                ks = infiltration if node.sharing == "infiltration" else range(len(components))
                out += [(k, j) for k in ks]
        return out

    def assembly(self, components: tuple[str, ...], infiltration: tuple[int, ...]) -> np.ndarray:
        """(component * node, free parameter) 0/1: theta is this matrix times the free parameters (a
        node with a structural zero has no column)."""
        free = self.free_parameters(components, infiltration)
        K, N = len(components), len(self.nodes)
        a = np.zeros((K * N, len(free)))
        for i, (k, j) in enumerate(free):
            for kk in (range(K) if k is None else (k,)):
                a[kk * N + j, i] = 1.0
        return a

    def free_names(self, components: tuple[str, ...], infiltration: tuple[int, ...]) -> tuple[str, ...]:
        """A name per free parameter: 'leptomeningeal | csf: detectable', 'all causes | csf: traumatic'."""
        return tuple(f"{'all causes' if k is None else components[k]} | {self.nodes[j].name}"
                     for k, j in self.free_parameters(components, infiltration))

    def levels_of(self, name: str) -> tuple[str, ...]:
        """The levels of a context finding (``lineage``, ``remission``, ...)."""
        return self.context_levels[name]

    def group_mask(self, item: str, levels: tuple[str, ...] | list[str]) -> np.ndarray:
        """A 0/1 vector over all levels marking ``levels`` of ``item``."""
        mask = np.zeros(self.n_levels)
        for lv in levels:
            mask[self.level_index[(item, lv)]] = 1.0
        return mask

    def find_node(self, item: str, success: tuple[str, ...], of: tuple[str, ...]) -> int | None:
        """Index of the node ``P(success | of)`` of ``item``, or None if the tree has no such node."""
        for k, node in enumerate(self.nodes):
            if node.item == item and set(node.success) == set(success) and set(node.of) == set(of):
                return k
        return None

    def group_path(self, item: str, group: tuple[str, ...]) -> list[tuple[int, bool]] | None:
        """The nodes (index, success?) whose product is P(group), or None if the group splits a node.

        A group that is a union of whole branches (a level, or a partly known value such as
        ``beyond_facial``) has P(group) equal to a product of node probabilities, which is what makes
        the posterior conjugate.
        """
        path = []
        gset = set(group)
        for k, node in enumerate(self.nodes):
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

    # -- strata -----------------------------------------------------------------------------------
    def expand(self, finding: str, value: str) -> tuple[str, ...]:
        """The levels a (possibly partly known) value stands for."""
        return self.schema.expand(finding, value)

    def stratum_mask(self, values: dict[str, str | None] | None = None) -> np.ndarray:
        """A 0/1 vector over the strata compatible with (possibly partly known) context values."""
        values = values or {}
        mask = np.ones(self.strata_shape)
        for axis, name in enumerate(self.context):
            v = values.get(name)
            if v is None:
                continue
            keep = np.array([lv in self.expand(name, v) for lv in self.context_levels[name]], float)
            shape = [1] * len(self.context)
            shape[axis] = -1
            mask = mask * keep.reshape(shape)
        return mask.ravel()

    def level_indicator(self, name: str) -> np.ndarray:
        """(stratum, level) 0/1: which level of context finding ``name`` each stratum has."""
        axis = self.context.index(name)
        out = np.zeros((self.n_strata, len(self.context_levels[name])))
        for s, levels in enumerate(self.strata):
            out[s, self.context_levels[name].index(levels[axis])] = 1.0
        return out


@functools.lru_cache(maxsize=8)
def of(schema: Schema) -> Structure:
    """The structure of ``schema`` (built once per schema)."""
    return Structure(schema)
