"""Hyperbolic embedding of a tree: the task of Riemannian Adam's WordNet experiments, in miniature.

    p = reference.problems.create("poincare_tree", branching=2, depth=4, dim=2)
    params = p.init(0)        # {"embedding": (n_nodes, dim)}: one point of the Poincaré ball per row
    opt = reference.optim.create("riemannian_adam", lr=0.1, manifolds={"embedding": "poincare"})

The tree: by default the complete binary tree of depth 4 (31 nodes, root 0,
nodes numbered breadth-first). ``branching`` may also be a sequence of
per-level branching factors (``branching=(5, 20)``: a root, 5 hubs, 100
leaves: a wide, shallow hierarchy whose leaves take part in few pairs, as
most WordNet nouns do), or ``parents`` gives any tree (``parents[i]`` the
parent of node ``i < n``, ``parents[0] = -1``, ``parents[i] < i``;
:func:`random_tree` grows one by preferential attachment). As in Nickel & Kiela (2017, "Poincaré Embeddings for
Learning Hierarchical Representations") and Bécigneul & Ganea (2019), who
embed the transitive closure of WordNet's noun hierarchy, the relations
``D`` are the transitive closure: every (descendant ``u``, ancestor ``v``)
pair. Each pair is one example, with the loss

    l(u, v) = d(u, v) + log sum_{v' in N(u, v)} exp(-d(u, v'))
            = -log softmax over N(u, v) of -d(u, .), at v

with the candidates ``N(u, v) = {v} + {v' : v' unrelated to u}`` (neither
``u``, nor an ancestor nor a descendant of ``u``): the true ancestor must be
closer to ``u`` than every unrelated node. All negatives are used (no
sampling), so the loss is a deterministic finite sum over the
``n_pairs = sum_{nodes} depth(node)`` examples. The distance is that of the
Poincaré ball of curvature ``-c``,

    d(x, y) = arccosh(1 + 2 c |x - y|^2 / ((1 - c|x|^2)(1 - c|y|^2))) / sqrt(c),
    arccosh(z) = log(z + sqrt((z - 1)(z + 1))),

written with the library's autograd ops (so gradients, HVPs and per-sample
gradients all come from ``reference.autograd``). The loss is finite only
strictly inside the ball (``c |x|^2 < 1`` for every row): optimize it with a
Riemannian method (``riemannian_adam`` with ``manifolds={"embedding":
"poincare"}``), which keeps the rows inside.

Decisions written down here:

* **Self pairs**: the row of distances from ``u`` contains ``d(u, u) = 0``,
  where ``arccosh`` has an infinite derivative; it is masked out of the sum,
  but ``0 * inf`` would still poison the gradient. So ``1`` is added to the
  argument ``q`` of every masked-out entry before the square root (those
  entries are then multiplied by 0): the gradient is exact for the others.
* **Init**: uniform in ``[-init_scale, init_scale]^dim`` with ``init_scale =
  0.1`` (Nickel & Kiela use 1e-3; the larger box keeps the points well apart
  so that finite-difference checks of the gradient are accurate).
* ``evaluate`` gives the loss, the **mean rank** of the true ancestor among
  its candidates (1 = perfect; Nickel & Kiela's reconstruction metric) and
  the largest ``sqrt(c)|x|`` over the rows.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..backend import to_device, xp_of
from . import register
from .base import Problem
from .networks import check_int

__all__ = ["PoincareTree", "arccosh", "poincare_distance", "complete_tree", "random_tree"]


def arccosh(z):
    """``arccosh(z) = log(z + sqrt((z - 1)(z + 1)))`` for ``z >= 1``, in autograd ops."""
    return ag.log(z + ag.sqrt((z - 1.0) * (z + 1.0)))


def poincare_distance(x, y, c=1.0, offset=0.0):
    """Geodesic distance between rows of ``x`` and ``y`` (broadcast over leading axes) on the ball
    of curvature ``-c``; ``offset`` is added to ``q = c|x-y|^2 / ((1-c|x|^2)(1-c|y|^2))`` (see the
    module docstring: keeps the derivative finite at masked-out zero distances)."""
    diff = x - y
    q = c * ag.sum(diff * diff, axis=-1) / ((1.0 - c * ag.sum(x * x, axis=-1)) * (1.0 - c * ag.sum(y * y, axis=-1)))
    return arccosh(1.0 + 2.0 * (q + offset)) / c ** 0.5


def complete_tree(branching):
    """Parent of every node of the complete tree with ``branching[l]`` children per node at level ``l``
    (root 0 has parent -1; nodes numbered breadth-first)."""
    parent = [-1]
    frontier = [0]
    for b in branching:
        nxt = []
        for p in frontier:
            for _ in range(b):
                parent.append(p)
                nxt.append(len(parent) - 1)
        frontier = nxt
    return parent


def random_tree(n_nodes, seed=0):
    """A random recursive tree grown by preferential attachment: node ``i`` picks its parent among
    ``0..i-1`` with probability proportional to (number of children + 1). Heavy-tailed degrees,
    like WordNet's noun hierarchy."""
    rng = np.random.default_rng(seed)
    parent, weight = [-1], [1.0]
    for i in range(1, n_nodes):
        w = np.array(weight)
        p = int(rng.choice(i, p=w / w.sum()))
        parent.append(p)
        weight[p] += 1.0
        weight.append(1.0)
    return parent


def _ancestors(parent):
    """Every node's ancestors, nearest first (checks that ``parent`` is a tree rooted at node 0)."""
    parent = np.asarray(parent, dtype=np.int64)
    n = len(parent)
    if n < 3 or parent[0] != -1 or np.any(parent[1:] < 0) or np.any(parent[1:] >= np.arange(1, n)):
        raise ValueError("poincare_tree: parents must list, for nodes 0..n-1 (n >= 3), the parent of each "
                         "node, with parents[0] = -1 (the root) and 0 <= parents[i] < i otherwise")
    ancestors = []
    for i in range(len(parent)):
        a, j = [], parent[i]
        while j >= 0:
            a.append(j)
            j = parent[j]
        ancestors.append(a)
    return parent, ancestors


@register("poincare_tree")
class PoincareTree(Problem):
    """A tree embedded in the Poincaré ball with Nickel & Kiela's loss (see the module docstring)."""

    def __init__(self, branching=2, depth=4, dim=2, c=1.0, init_scale=0.1, parents=None):
        super().__init__()
        where = self.name
        if parents is None:
            if isinstance(branching, (int, np.integer)):
                branching = (check_int(where, "branching", branching, 1),) * check_int(where, "depth", depth, 1)
            self.branching = tuple(check_int(where, "branching", b, 1) for b in branching)
            if not self.branching:
                raise ValueError(f"{where}: branching must be an int >= 1 or a non-empty sequence of them")
            self.depth = len(self.branching)
            parents = complete_tree(self.branching)
        else:
            self.branching = self.depth = None
        self.embed_dim = check_int(where, "dim", dim, 1)
        c = float(c)
        if not np.isfinite(c) or c <= 0:
            raise ValueError(f"{where}: c must be a finite number > 0, got {c!r}")
        init_scale = float(init_scale)
        if not (np.isfinite(init_scale) and 0 < init_scale * (dim * c) ** 0.5 < 1):
            raise ValueError(f"{where}: init_scale must be > 0 with init_scale * sqrt(dim * c) < 1 (inside "
                             f"the ball), got {init_scale!r}")
        self.c, self.init_scale = c, init_scale
        self.parent, ancestors = _ancestors(parents)
        n = self.n_nodes = len(self.parent)
        related = np.eye(n, dtype=bool)
        for u, anc in enumerate(ancestors):
            related[u, anc] = True
            related[anc, u] = True
        us, vs = [], []
        for u, anc in enumerate(ancestors):
            for v in anc:
                us.append(u)
                vs.append(v)
        us, vs = np.array(us), np.array(vs)
        mask = (~related[us]).astype(np.float64)      # the unrelated nodes of u ...
        mask[np.arange(len(us)), vs] = 1.0            # ... and the true ancestor v
        self.data = {"u": us, "v": vs, "mask": mask}
        self.param_shapes = {"embedding": (n, self.embed_dim)}

    def __repr__(self):
        shape = "given parents" if self.depth is None else f"branching {self.branching} per level"
        return (f"<problem {self.name}: {self.n_nodes}-node tree ({shape}) in the {self.embed_dim}-D "
                f"Poincaré ball, c={self.c}, {self.n_train} pairs>")

    def _init(self, rng):
        return {"embedding": rng.uniform(-self.init_scale, self.init_scale, (self.n_nodes, self.embed_dim))}

    def distances(self, params, batch):
        """``(B, n_nodes)`` distances from each example's ``u`` to every node, masked-out entries offset."""
        X = params["embedding"]
        X = X if isinstance(X, ag.Tensor) else ag.Tensor(X)              # ag.getitem needs a Tensor
        xu = ag.getitem(X, batch["u"])                                   # (B, dim)
        return poincare_distance(ag.expand_dims(xu, 1), ag.expand_dims(X, 0), self.c,
                                 offset=1.0 - batch["mask"])

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        D = self.distances(params, batch)                                # (B, n)
        rows = xp_of(batch["v"]).arange(D.shape[0])
        d_uv = ag.getitem(D, (rows, batch["v"]))                          # d(u, v)
        return d_uv + ag.log(ag.sum(batch["mask"] * ag.exp(-D), axis=1))

    def evaluate(self, params):
        """The loss, the mean rank of the true ancestor among its candidates, and the largest sqrt(c)|x|."""
        self.check_params(params)
        X = np.asarray(to_device(params, "cpu")["embedding"], dtype=np.float64)
        batch = self.data
        D = self.distances({"embedding": X}, batch).value
        E = len(batch["u"])
        d_uv = D[np.arange(E), batch["v"]]
        closer = (batch["mask"] > 0) & (D < d_uv[:, None])
        return {"loss": float(self.loss(params)), "mean_rank": float(1.0 + closer.sum(axis=1).mean()),
                "max_norm": float(np.sqrt(self.c) * np.linalg.norm(X, axis=1).max())}
