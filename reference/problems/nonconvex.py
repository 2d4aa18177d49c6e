"""Nonconvex test functions and models: Rosenbrock, Beale, Rastrigin, matrix
sensing, phase retrieval, scalar networks and deep linear networks."""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..backend import to_numpy
from . import register
from .base import Problem, check_int


@register("rosenbrock")
class Rosenbrock(Problem):
    """The Rosenbrock valley in ``dim`` dimensions (Rosenbrock, 1960):

        f(w) = sum_{i<d} b (w_{i+1} - w_i^2)^2 + (a - w_i)^2

    Minimum ``0`` at ``w = (a, a^2, ...)`` which is ``(1, ..., 1)`` for the
    default ``a = 1``, ``b = 100``. The default start is the classic
    ``(-1.2, 1, -1.2, 1, ...)``; ``init(seed)`` adds ``jitter`` * N(0, 1) to it
    so different seeds start at nearby points.
    Params: ``{"w": (dim,)}``.
    """

    def __init__(self, dim=2, a=1.0, b=100.0, jitter=0.0):
        super().__init__()
        if int(dim) < 2:
            raise ValueError(f"rosenbrock: dim must be >= 2, got {dim}")
        self.dim_, self.a, self.b, self.jitter = int(dim), float(a), float(b), float(jitter)
        self.param_shapes = {"w": (self.dim_,)}
        self.seeded_init = self.jitter > 0

    def _init(self, rng):
        start = np.tile([-1.2, 1.0], self.dim_)[: self.dim_]
        return {"w": start + self.jitter * rng.standard_normal(self.dim_)}

    def _loss(self, params, batch):
        w = params["w"]
        return ag.sum(self.b * (w[1:] - w[:-1] ** 2) ** 2 + (self.a - w[:-1]) ** 2)

    # the 'outputs' capability: Rosenbrock is a nonlinear least-squares problem, one "example" whose
    # 2 (dim - 1) residuals are sqrt(b) (w_{i+1} - w_i^2) and a - w_i, with the loss their sum of squares
    def _outputs(self, params, batch):
        w = params["w"]
        r = ag.concatenate([(self.b ** 0.5) * (w[1:] - w[:-1] ** 2), self.a - w[:-1]])
        return ag.reshape(r, (1, -1))

    def _output_loss(self, outputs, batch):
        return ag.sum(outputs * outputs, axis=1)

    @property
    def optimum(self):
        # with a = 1 every term vanishes at w = 1; for other a the terms conflict when dim > 2
        return {"w": np.ones(self.dim_)} if self.a == 1.0 else None

    @property
    def optimal_value(self):
        return 0.0 if self.a == 1.0 else None


# ---- shared checks --------------------------------------------------------------

def _finite(problem, setting, value, low=None, strict=False):
    """``value`` as a float, or a ``ValueError`` naming ``setting`` when it is not finite (and above ``low``)."""
    v = float(value)
    if not np.isfinite(v) or (low is not None and (v <= low if strict else v < low)):
        bound = "" if low is None else f" {'>' if strict else '>='} {low}"
        raise ValueError(f"{problem}: {setting} must be a finite number{bound}, got {value!r}")
    return v


def _orthonormal_columns(rng, n, k):
    """An ``(n, k)`` matrix with orthonormal columns, Haar-distributed (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))


# ---- classic 2-D and n-D test functions ----------------------------------------------

@register("beale")
class Beale(Problem):
    """Beale's function (Beale, 1958), two variables ``w = (x, y)``:

        f(x, y) = (1.5 - x + x y)^2 + (2.25 - x + x y^2)^2 + (2.625 - x + x y^3)^2

    Minimum ``0`` at ``(3, 0.5)``, the only point where all three terms vanish.
    The landscape is flat for ``x`` near 0 and has steep ridges in the
    corners of the usual box ``[-4.5, 4.5]^2``. The default start is ``(1, 1)``;
    ``init(seed)`` adds ``jitter`` * N(0, 1) to it (like :class:`Rosenbrock`).
    Params: ``{"w": (2,)}``.
    """

    def __init__(self, jitter=0.0):
        super().__init__()
        self.jitter = _finite("beale", "jitter", jitter, low=0.0)
        self.param_shapes = {"w": (2,)}
        self.seeded_init = self.jitter > 0

    def _init(self, rng):
        return {"w": np.array([1.0, 1.0]) + self.jitter * rng.standard_normal(2)}

    def _loss(self, params, batch):
        w = params["w"]
        x, y = w[0], w[1]
        return ag.square(1.5 - x + x * y) + ag.square(2.25 - x + x * y ** 2) + ag.square(2.625 - x + x * y ** 3)

    @property
    def optimum(self):
        return {"w": np.array([3.0, 0.5])}

    @property
    def optimal_value(self):
        return 0.0


@register("rastrigin")
class Rastrigin(Problem):
    """The Rastrigin function (Rastrigin, 1974) in ``dim`` dimensions:

        f(w) = a d + sum_i (w_i^2 - a cos(2 pi w_i))

    with ``a = 10`` (often written ``A``). Global minimum ``0`` at ``w = 0``,
    surrounded by a regular grid of local minima just inside the integer
    points (where the gradient is ``2 w``, the cosine term being flat),
    which makes it the standard test of escaping bad local minima.
    ``init(seed)`` draws ``w`` uniformly in ``[-bound, bound]^d`` with the
    customary ``bound = 5.12``. Params: ``{"w": (dim,)}``.
    """

    def __init__(self, dim=2, a=10.0, bound=5.12):
        super().__init__()
        self.dim_ = check_int("rastrigin", "dim", dim, 1)
        self.a = _finite("rastrigin", "a", a, low=0.0)
        self.bound = _finite("rastrigin", "bound", bound, low=0.0, strict=True)
        self.param_shapes = {"w": (self.dim_,)}

    def _init(self, rng):
        return {"w": rng.uniform(-self.bound, self.bound, self.dim_)}

    def _loss(self, params, batch):
        w = params["w"]
        return self.a * self.dim_ + ag.sum(w ** 2 - self.a * ag.cos(2 * np.pi * w))

    @property
    def optimum(self):
        return {"w": np.zeros(self.dim_)}

    @property
    def optimal_value(self):
        return 0.0


# ---- low-rank and phase-retrieval models with Gaussian measurements ------------------

@register("matrix_sensing")
class MatrixSensing(Problem):
    """Symmetric low-rank matrix sensing in the Burer-Monteiro factorisation.

    A ground truth ``X* = U* U*^T`` (``n x n``, PSD, rank ``rank``) is seen
    through ``m`` Gaussian measurements and recovered as ``U U^T`` with a
    factor ``U`` of ``width`` columns:

        y_i = <A_i, X*> = sum_jk (A_i)_jk X*_jk,    (A_i)_jk ~ N(0, 1) i.i.d.
        f_i(U) = 1/2 (<A_i, U U^T> - y_i)^2,         f(U) = (1/m) sum_i f_i(U)

    **Scaling.** With unit-variance entries, ``E <A, X>^2 = ||X||_F^2``, so
    ``E f(U) = 1/2 ||U U^T - X*||_F^2``: the mean over measurements with a
    factor ``1/2``. (Some papers, e.g. the incremental-learning analysis of
    Jin et al. (2023), write ``(1/m) sum_i (<A_i, U U^T> - y_i)^2`` without
    the ``1/2``: their gradient is twice ours, so their step size is half of
    ours.) Only the symmetric part ``(A_i + A_i^T)/2`` meets ``U U^T``, so
    these ``A_i`` act exactly like symmetric Gaussian matrices with ``N(0,
    1)`` diagonal and ``N(0, 1/2)`` off-diagonal entries.

    **Ground truth.** ``U* = Q diag(sqrt(eigenvalues))`` with ``Q`` an
    ``(n, rank)`` Haar-random orthonormal matrix, so the nonzero eigenvalues
    of ``X*`` are exactly ``eigenvalues``, default ``1, (r-1)/r, ..., 1/r``:
    distinct, so the incremental (one eigenvalue at a time) learning of small
    initialisation shows one plateau per eigenvalue.

    **Optimum.** Value ``0`` at ``U = [U*, 0]`` (zero columns pad ``U*`` to
    ``width``) and at every ``U R`` with ``R`` orthogonal (``width x width``):
    ``U U^T`` is all that the loss sees. Known when ``width >= rank``; with
    ``width < rank`` (under-parameterised) no ``U`` fits and ``optimum`` is
    ``None``. With ``measurements`` well above ``n * rank`` the fit is unique
    up to that rotation.

    **Init** (the small-initialisation regime): ``U_0 = init_scale * G`` with
    ``G`` standard Gaussian, default ``init_scale = 1e-2``.

    Params: ``{"U": (n, width)}``. Data: ``{"A": (m, n, n), "y": (m,)}``, drawn
    once from the constructor's ``seed`` (``init(seed)`` seeds only the start).
    """

    def __init__(self, n=5, rank=2, width=None, measurements=60, eigenvalues=None, init_scale=1e-2,
                 seed=0):
        super().__init__()
        name = "matrix_sensing"
        self.n = check_int(name, "n", n, 1)
        self.rank = check_int(name, "rank", rank, 1)
        if self.rank > self.n:
            raise ValueError(f"{name}: rank must be <= n = {self.n}, got {rank!r}")
        self.width = self.rank if width is None else check_int(name, "width", width, 1)
        self.measurements = check_int(name, "measurements", measurements, 1)
        self.init_scale = _finite(name, "init_scale", init_scale, low=0.0)
        if eigenvalues is None:
            eigenvalues = np.arange(self.rank, 0, -1) / self.rank
        eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
        if eigenvalues.shape != (self.rank,) or not np.all(np.isfinite(eigenvalues)) or np.any(eigenvalues <= 0):
            raise ValueError(f"{name}: eigenvalues must be {self.rank} (rank) finite numbers > 0, got {eigenvalues!r}")
        self.eigenvalues = eigenvalues

        rng = np.random.default_rng(seed)
        self.U_star = _orthonormal_columns(rng, self.n, self.rank) * np.sqrt(eigenvalues)   # U* = Q diag(sqrt(lambda))
        self.X_star = self.U_star @ self.U_star.T                                         # X* = U* U*^T
        A = rng.standard_normal((self.measurements, self.n, self.n))                      # (A_i)_jk ~ N(0, 1)
        self.data = {"A": A, "y": np.einsum("ijk,jk->i", A, self.X_star)}                 # y_i = <A_i, X*>
        self.param_shapes = {"U": (self.n, self.width)}

    def _init(self, rng):
        return {"U": self.init_scale * rng.standard_normal((self.n, self.width))}

    def _per_example_loss(self, params, batch):
        A, y = batch["A"], batch["y"]
        U = params["U"]
        X = ag.reshape(U @ ag.transpose(U), (self.n * self.n,))                # U U^T, flattened
        measured = ag.matmul(A.reshape(A.shape[0], self.n * self.n), X)        # <A_i, U U^T>
        return 0.5 * (measured - y) ** 2

    @property
    def optimum(self):
        if self.width < self.rank:
            return None
        return {"U": np.concatenate([self.U_star, np.zeros((self.n, self.width - self.rank))], axis=1)}

    @property
    def optimal_value(self):
        return 0.0 if self.width >= self.rank else None

    def evaluate(self, params):
        """The loss and ``recovery_error = ||U U^T - X*||_F / ||X*||_F``."""
        U = np.asarray(to_numpy(params)["U"], dtype=np.float64)
        err = np.linalg.norm(U @ U.T - self.X_star) / np.linalg.norm(self.X_star)
        return {**super().evaluate(params), "recovery_error": float(err)}


@register("phase_retrieval")
class PhaseRetrieval(Problem):
    """Real phase retrieval from Gaussian intensity measurements (the Wirtinger-flow objective).

        y_i = (a_i^T x*)^2,                 a_i ~ N(0, I_n)
        f_i(x) = 1/4 ((a_i^T x)^2 - y_i)^2,  f(x) = (1/m) sum_i f_i(x)

    The ``1/4`` makes the gradient the one of Candes, Li and Soltanolkotabi
    (2015), ``(1/m) sum_i ((a_i^T x)^2 - y_i) (a_i^T x) a_i``, and the
    Hessian at ``x*`` equal to ``(2/m) sum_i (a_i^T x*)^2 a_i a_i^T`` (about
    ``2 (I + 2 x* x*^T)`` for large ``m``).

    ``x*`` is a uniformly random unit vector. **Optimum**: value ``0`` at
    ``x*`` and at ``-x*`` (the sign is lost in ``y``); for ``measurements``
    well above ``n`` (the default ``m = 8 n``) these are the only global
    minimisers. ``init(seed)``: ``x_0 ~ N(0, init_scale^2 I_n / n)`` (norm
    about ``init_scale``), a random start, not the spectral one.

    Params: ``{"x": (n,)}``. Data: ``{"a": (m, n), "y": (m,)}``, drawn once
    from the constructor's ``seed`` (``init(seed)`` seeds only the start).
    """

    def __init__(self, n=5, measurements=40, init_scale=1.0, seed=0):
        super().__init__()
        name = "phase_retrieval"
        self.n = check_int(name, "n", n, 1)
        self.measurements = check_int(name, "measurements", measurements, 1)
        self.init_scale = _finite(name, "init_scale", init_scale, low=0.0)
        rng = np.random.default_rng(seed)
        x_star = rng.standard_normal(self.n)
        self.x_star = x_star / np.linalg.norm(x_star)                   # ||x*|| = 1
        a = rng.standard_normal((self.measurements, self.n))             # a_i ~ N(0, I)
        self.data = {"a": a, "y": (a @ self.x_star) ** 2}                # y_i = (a_i^T x*)^2
        self.param_shapes = {"x": (self.n,)}

    def _init(self, rng):
        return {"x": self.init_scale * rng.standard_normal(self.n) / np.sqrt(self.n)}

    def _per_example_loss(self, params, batch):
        z = ag.matmul(batch["a"], params["x"])          # a_i^T x
        return 0.25 * (z ** 2 - batch["y"]) ** 2

    @property
    def optimum(self):
        return {"x": self.x_star.copy()}

    @property
    def optimal_value(self):
        return 0.0

    def evaluate(self, params):
        """The loss and ``distance = min(||x - x*||, ||x + x*||) / ||x*||`` (the sign cannot be recovered)."""
        x = np.asarray(to_numpy(params)["x"], dtype=np.float64)
        dist = min(np.linalg.norm(x - self.x_star), np.linalg.norm(x + self.x_star))
        return {**super().evaluate(params), "distance": float(dist)}


# ---- linear networks -------------------------------------------------------------

@register("scalar_network")
class ScalarNetwork(Problem):
    """A depth-``L`` scalar (one unit per layer) linear network fit to one target:

        f(w) = 1/2 (w_1 w_2 ... w_L - y)^2

    the setting of Kreisler, Nacson, Soudry and Carmon (2023), "Gradient
    Descent Monotonically Decreases the Sharpness of Gradient Flow Solutions
    in Scalar Networks and Beyond". (A data set of scalar pairs ``(x_j,
    y_j)`` gives the same landscape: ``1/(2n) sum_j (x_j p - y_j)^2 = s/2 (p -
    c/s)^2 + const`` with ``s = mean x^2``, ``c = mean x y``.)

    **Minimisers.** Every ``w`` with ``prod_i w_i = y`` has loss ``0`` and
    zero gradient: a whole (L-1)-dimensional set. ``optimum`` is the
    *balanced* one, ``w_i = |y|^(1/L)`` with the sign of ``y`` on ``w_1``,
    the flattest minimiser. At a minimiser the Hessian is ``g g^T`` with
    ``g_i = prod_{j != i} w_j = y / w_i``, so the sharpness (top Hessian
    eigenvalue) is ``sum_i (y / w_i)^2``, smallest at the balanced point,
    ``L |y|^(2 - 2/L)``; :meth:`sharpness` computes it at any point.

    ``init(seed)``: ``w_i = exp(init_std z_i)``, ``z_i ~ N(0, 1)``: positive,
    median 1, unbalanced. Params: ``{"w": (depth,)}``.
    """

    def __init__(self, depth=4, target=2.0, init_std=0.5):
        super().__init__()
        self.depth = check_int("scalar_network", "depth", depth, 1)
        self.target = _finite("scalar_network", "target", target)
        self.init_std = _finite("scalar_network", "init_std", init_std, low=0.0)
        self.param_shapes = {"w": (self.depth,)}

    def _init(self, rng):
        return {"w": np.exp(self.init_std * rng.standard_normal(self.depth))}

    def _loss(self, params, batch):
        w = params["w"]
        product = w[0]
        for i in range(1, self.depth):   # w_1 w_2 ... w_L, one multiplication per layer
            product = product * w[i]
        return 0.5 * ag.square(product - self.target)

    @property
    def optimum(self):
        w = np.full(self.depth, abs(self.target) ** (1.0 / self.depth))
        w[0] *= np.sign(self.target)
        return {"w": w}

    @property
    def optimal_value(self):
        return 0.0

    def sharpness(self, params):
        """Largest eigenvalue of the dense ``L x L`` Hessian at any ``params`` (float64, on the host).

        ``L`` forward-over-reverse passes (``ag.hessian``), then ``numpy.linalg.eigvalsh``.
        """
        self.check_params(params)
        w = np.asarray(to_numpy(params)["w"], dtype=np.float64)
        H = ag.hessian(lambda v: self._loss({"w": v}, None))(w)
        return float(np.linalg.eigvalsh(H)[-1])

    def evaluate(self, params):
        """The loss, the ``product`` w_1 ... w_L and the ``sharpness``."""
        w = np.asarray(to_numpy(params)["w"], dtype=np.float64)
        return {**super().evaluate(params), "product": float(np.prod(w)), "sharpness": self.sharpness(params)}


@register("deep_linear_network")
class DeepLinearNetwork(Problem):
    """Linear regression with a deep linear network ``W_L ... W_1`` (Saxe et al. 2014; Arora et al. 2018, 2019).

    Widths ``sizes = (d_0, d_1, ..., d_L)``: input ``d_0``, hidden ``d_1 ..
    d_{L-1}``, output ``d_L``, depth ``L = len(sizes) - 1``. Examples ``x_i ~
    N(0, I_{d_0})`` (rows of ``X``, ``n = n_train`` of them) and targets
    ``y_i = M x_i + noise * e_i`` (``e_i ~ N(0, I)``, no noise by default):

        f_i(W) = 1/2 ||W_L ... W_1 x_i - y_i||^2,
        f(W) = (1/n) sum_i f_i = 1/(2n) ||X W_1^T ... W_L^T - Y||_F^2

    **Params** follow PyTorch's ``state_dict`` of
    ``nn.Sequential(*[nn.Linear(d_{j-1}, d_j, bias=False) for j in 1..L])``:
    ``W_j`` is ``params[f"{j-1}.weight"]`` with shape ``(d_j, d_{j-1})``
    (``"0.weight"`` is the first layer) and a layer computes ``x @ W_j^T``.

    **Target.** ``M = A B / sqrt(rank d_0)`` with ``A`` (``d_L x rank``) and
    ``B`` (``rank x d_0``) standard Gaussian: rank ``rank`` (default
    ``min(d_0, d_L)``), entries of variance ``1/d_0``.

    **Optimum.** With no noise, the end-to-end matrix must equal ``M`` (on
    the span of the data). ``optimum`` is the *balanced* factorisation
    through the compact SVD ``M = P S Q^T`` (``k = rank(M)`` singular values):

        W_1 = [S^(1/L) Q^T; 0],   W_j = [[S^(1/L), 0], [0, 0]] (1 < j < L),   W_L = [P S^(1/L), 0]

    which satisfies ``W_{j+1}^T W_{j+1} = W_j W_j^T`` and ``W_L ... W_1 = M``;
    it exists when every hidden width is ``>= k``, else ``optimum`` is
    ``None``. Value ``0``. Any ``W_j -> R W_j``, ``W_{j+1} -> W_{j+1} R^{-1}``
    (``R`` invertible) keeps the product, so the minimisers form a manifold
    (balanced ones stay balanced for orthogonal ``R``). With
    ``noise > 0`` the same construction is applied to the least-squares
    matrix ``M_hat = argmin_B ||X B^T - Y||_F`` and ``optimal_value`` is its
    residual loss.

    ``init(seed)``: ``W_j ~ N(0, init_scale^2 / d_{j-1})`` entrywise (LeCun
    normal for ``init_scale = 1``; small ``init_scale`` is the near-zero
    regime). Data: ``{"x": (n, d_0), "y": (n, d_L)}``, drawn once from the
    constructor's ``seed`` (``init(seed)`` seeds only the start).
    """

    def __init__(self, sizes=(4, 4, 4, 4), rank=None, n_train=32, noise=0.0, init_scale=1.0, seed=0):
        super().__init__()
        name = "deep_linear_network"
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"{name}: depth must be >= 1: sizes lists the input width then one width per layer, "
                             f"got sizes={sizes!r}")
        self.sizes = tuple(check_int(name, f"sizes[{i}]", s, 1) for i, s in enumerate(sizes))
        self.depth = len(self.sizes) - 1
        d_in, d_out = self.sizes[0], self.sizes[-1]
        full = min(d_in, d_out)
        self.rank = full if rank is None else check_int(name, "rank", rank, 1)
        if self.rank > full:
            raise ValueError(f"{name}: rank must be <= min(input, output width) = {full}, got {rank!r}")
        self.n_train_ = check_int(name, "n_train", n_train, 1)
        self.noise = _finite(name, "noise", noise, low=0.0)
        self.init_scale = _finite(name, "init_scale", init_scale, low=0.0)

        rng = np.random.default_rng(seed)
        A = rng.standard_normal((d_out, self.rank))
        B = rng.standard_normal((self.rank, d_in))
        self.M = A @ B / np.sqrt(self.rank * d_in)                        # target map, rank `rank`
        x = rng.standard_normal((self.n_train_, d_in))                    # x_i ~ N(0, I)
        y = x @ self.M.T                                                  # y_i = M x_i
        if self.noise > 0:
            y = y + self.noise * rng.standard_normal(y.shape)
        self.data = {"x": x, "y": y}
        self.param_shapes = {f"{j}.weight": (self.sizes[j + 1], self.sizes[j]) for j in range(self.depth)}

    def _init(self, rng):
        return {f"{j}.weight": self.init_scale * rng.standard_normal((self.sizes[j + 1], self.sizes[j]))
                / np.sqrt(self.sizes[j]) for j in range(self.depth)}

    def _per_example_loss(self, params, batch):
        h = batch["x"]
        for j in range(self.depth):                       # h <- h W_j^T, layer by layer
            W = params[f"{j}.weight"]
            h = ag.matmul(h, ag.transpose(W))
        return 0.5 * ag.sum((h - batch["y"]) ** 2, axis=1)

    def end_to_end(self, params):
        """The product ``W_L ... W_1`` (shape ``(d_L, d_0)``) as an array on the params' device."""
        prod = params["0.weight"]
        for j in range(1, self.depth):
            prod = params[f"{j}.weight"] @ prod
        return prod

    def _least_squares_map(self):
        """``M`` without noise; else ``M_hat``, the minimiser of ``||X B^T - Y||_F`` (min-norm if not unique)."""
        if self.noise == 0:
            return self.M
        return np.linalg.lstsq(self.data["x"], self.data["y"], rcond=None)[0].T

    @property
    def optimum(self):
        target = self._least_squares_map()
        P, s, Qt = np.linalg.svd(target, full_matrices=False)
        k = int(np.sum(s > s[0] * max(target.shape) * np.finfo(np.float64).eps))   # numerical rank
        if min(self.sizes[1:-1], default=k) < k:
            return None
        root = s[:k] ** (1.0 / self.depth)                                            # S^(1/L)
        out = {}
        for j in range(self.depth):
            rows = P[:, :k] if j == self.depth - 1 else np.eye(self.sizes[j + 1])[:, :k]   # (d_j, k)
            cols = Qt[:k] if j == 0 else np.eye(self.sizes[j])[:k]                          # (k, d_{j-1})
            out[f"{j}.weight"] = rows @ np.diag(root) @ cols                                # S^(1/L), embedded
        return out

    @property
    def optimal_value(self):
        if self.optimum is None:
            return None
        if self.noise == 0:
            return 0.0
        r = self.data["x"] @ self._least_squares_map().T - self.data["y"]
        return float(0.5 * np.mean(np.sum(r ** 2, axis=1)))

    def evaluate(self, params):
        """The loss and ``product_error = ||W_L ... W_1 - M||_F / ||M||_F``."""
        prod = np.asarray(self.end_to_end(to_numpy(params)), dtype=np.float64)
        err = np.linalg.norm(prod - self.M) / np.linalg.norm(self.M)
        return {**super().evaluate(params), "product_error": float(err)}
