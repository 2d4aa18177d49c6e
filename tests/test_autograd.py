"""The autograd against central differences, closed forms and its own axioms.

Every op's VJP and JVP is checked in float64 along random directions (first
and second order), over shapes that include broadcasting and axis variants.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference import autograd as ag
from reference.autograd import Tensor

RNG = np.random.default_rng(0)


def rand(*shape, low=None, high=None, seed=None):
    rng = np.random.default_rng(seed) if seed is not None else RNG
    if low is not None:
        return rng.uniform(low, high, shape)
    return rng.standard_normal(shape)


def distinct(*shape):
    """Entries far apart from each other, so max/maximum have no near-ties."""
    n = int(np.prod(shape)) if shape else 1
    return (RNG.permutation(n) * 0.37 + 0.1 * RNG.uniform(size=n) - n * 0.18).reshape(shape)


# (id, function, argument factory): every op of the contract, with broadcasting/axis variants
CASES = [
    ("add", lambda a, b: a + b, lambda: (rand(3, 4), rand(3, 4))),
    ("add_broadcast", lambda a, b: a + b, lambda: (rand(3, 4), rand(4))),
    ("add_broadcast_both", lambda a, b: a + b, lambda: (rand(3, 1), rand(1, 4))),
    ("sub_broadcast", lambda a, b: a - b, lambda: (rand(2, 3, 4), rand(3, 1))),
    ("mul_broadcast", lambda a, b: a * b, lambda: (rand(2, 3), rand(2, 1))),
    ("div", lambda a, b: a / b, lambda: (rand(3, 4), rand(3, 4, low=0.5, high=2.0))),
    ("div_broadcast", lambda a, b: a / b, lambda: (rand(3, 4), rand(4, low=0.5, high=2.0))),
    ("pow_const", lambda a: a ** 3, lambda: (rand(5),)),
    ("pow_frac", lambda a: a ** 1.5, lambda: (rand(5, low=0.5, high=2.0),)),
    ("pow_tensor", lambda a, b: a ** b, lambda: (rand(4, low=0.5, high=2.0), rand(4))),
    ("rpow", lambda a: 2.0 ** a, lambda: (rand(4),)),
    ("neg", lambda a: -a, lambda: (rand(3),)),
    ("scalar_ops", lambda a: (3.0 - a) * 2.0 / (1.0 + a * a), lambda: (rand(3, 2),)),
    ("exp", ag.exp, lambda: (rand(3, 4),)),
    ("log", ag.log, lambda: (rand(3, 4, low=0.5, high=3.0),)),
    ("log1p", ag.log1p, lambda: (rand(3, 4, low=-0.5, high=3.0),)),
    ("sin", ag.sin, lambda: (rand(6),)),
    ("cos", ag.cos, lambda: (rand(6),)),
    ("tanh", ag.tanh, lambda: (rand(2, 3),)),
    ("sqrt", ag.sqrt, lambda: (rand(2, 3, low=0.5, high=3.0),)),
    ("abs", ag.abs, lambda: (distinct(2, 3),)),
    ("square", ag.square, lambda: (rand(4),)),
    ("sigmoid", ag.sigmoid, lambda: (rand(3, 3) * 3,)),
    ("softplus", ag.softplus, lambda: (rand(3, 3) * 3,)),
    ("erf", ag.erf, lambda: (rand(3, 3),)),
    ("relu", ag.relu, lambda: (distinct(3, 4),)),
    ("gelu", ag.gelu, lambda: (rand(3, 4),)),
    ("gelu_tanh", lambda a: ag.gelu(a, approximate="tanh"), lambda: (rand(3, 4),)),
    ("maximum", ag.maximum, lambda: (distinct(3, 4), distinct(3, 4))),
    ("maximum_broadcast", ag.maximum, lambda: (distinct(3, 4), distinct(4))),
    ("minimum", ag.minimum, lambda: (distinct(5), distinct(5))),
    ("clip", lambda a: ag.clip(a, -0.5, 0.5), lambda: (distinct(7) / 3,)),
    ("where", lambda a, b: ag.where(np.arange(12).reshape(3, 4) % 3 == 0, a, b), lambda: (rand(3, 4), rand(4))),
    ("sum_all", lambda a: ag.sum(a), lambda: (rand(3, 4),)),
    ("sum_axis0", lambda a: ag.sum(a, axis=0), lambda: (rand(3, 4),)),
    ("sum_axis_neg_keep", lambda a: ag.sum(a, axis=-1, keepdims=True), lambda: (rand(2, 3, 4),)),
    ("sum_axes_tuple", lambda a: ag.sum(a, axis=(0, 2)), lambda: (rand(2, 3, 4),)),
    ("mean_all", lambda a: ag.mean(a), lambda: (rand(3, 4),)),
    ("mean_axis1", lambda a: ag.mean(a, axis=1), lambda: (rand(3, 4, 2),)),
    ("max_all", lambda a: ag.max(a), lambda: (distinct(3, 4),)),
    ("max_axis", lambda a: ag.max(a, axis=1), lambda: (distinct(3, 4),)),
    ("max_axis_keep", lambda a: ag.max(a, axis=0, keepdims=True), lambda: (distinct(3, 4),)),
    ("min_axis", lambda a: ag.min(a, axis=-1), lambda: (distinct(2, 5),)),
    ("reshape", lambda a: ag.reshape(a, (4, 3)), lambda: (rand(3, 4),)),
    ("transpose", lambda a: ag.transpose(a), lambda: (rand(3, 4),)),
    ("transpose_axes", lambda a: ag.transpose(a, (1, 2, 0)), lambda: (rand(2, 3, 4),)),
    ("T", lambda a: a.T * 1.0, lambda: (rand(2, 5),)),
    ("broadcast_to", lambda a: ag.broadcast_to(a, (2, 3, 4)), lambda: (rand(3, 1),)),
    ("expand_squeeze", lambda a: ag.squeeze(ag.expand_dims(a, 1), 1) * a, lambda: (rand(3, 4),)),
    ("matmul", ag.matmul, lambda: (rand(3, 4), rand(4, 2))),
    ("matmul_vec_left", ag.matmul, lambda: (rand(4), rand(4, 2))),
    ("matmul_vec_right", ag.matmul, lambda: (rand(3, 4), rand(4))),
    ("matmul_dot", ag.matmul, lambda: (rand(4), rand(4))),
    ("matmul_batched", ag.matmul, lambda: (rand(2, 3, 4), rand(2, 4, 5))),
    ("matmul_batch_broadcast", ag.matmul, lambda: (rand(2, 3, 4), rand(4, 5))),
    ("matmul_operator", lambda a, b: a @ b, lambda: (rand(3, 4), rand(4, 3))),
    ("concatenate", lambda a, b: ag.concatenate([a, b, a], axis=1), lambda: (rand(2, 3), rand(2, 2))),
    ("stack", lambda a, b: ag.stack([a, b], axis=0), lambda: (rand(3), rand(3))),
    ("getitem_slice", lambda a: a[1:, ::2], lambda: (rand(4, 5),)),
    ("getitem_int", lambda a: a[2], lambda: (rand(4, 3),)),
    ("getitem_fancy_repeat", lambda a: a[np.array([0, 2, 2, 1])], lambda: (rand(4, 3),)),
    ("getitem_pairs", lambda a: a[np.arange(3), np.array([1, 0, 2])], lambda: (rand(3, 3),)),
    ("getitem_bool", lambda a: a[np.array([True, False, True])], lambda: (rand(3, 2),)),
    ("logsumexp", lambda a: ag.logsumexp(a, axis=1), lambda: (rand(3, 5),)),
    ("logsumexp_all", lambda a: ag.logsumexp(a, axis=None), lambda: (rand(3, 5),)),
    ("logsumexp_tuple_axis", lambda a: ag.logsumexp(a, axis=(0, 2)), lambda: (rand(2, 3, 2),)),
    ("log_softmax", ag.log_softmax, lambda: (rand(3, 5),)),
    ("softmax", lambda a: ag.softmax(a, axis=0), lambda: (rand(3, 5),)),
    ("cross_entropy", lambda a: ag.cross_entropy(a, np.array([0, 3, 1])), lambda: (rand(3, 4),)),
    ("cross_entropy_sum", lambda a: ag.cross_entropy(a, np.array([2, 1]), reduction="sum"), lambda: (rand(2, 4),)),
    ("cross_entropy_soft", lambda a: ag.cross_entropy(a, np.full((2, 3), 1 / 3)), lambda: (rand(2, 3),)),
    ("mse_loss", ag.mse_loss, lambda: (rand(3, 2), rand(3, 2))),
    ("bce_logits", lambda a: ag.binary_cross_entropy_with_logits(a, np.array([0.0, 1.0, 1.0])), lambda: (rand(3) * 3,)),
    ("conv2d", lambda x, w, b: ag.conv2d(x, w, b), lambda: (rand(2, 3, 5, 5), rand(4, 3, 3, 3), rand(4))),
    ("conv2d_stride_pad", lambda x, w: ag.conv2d(x, w, stride=2, padding=1), lambda: (rand(1, 2, 6, 5), rand(3, 2, 3, 3))),
    ("max_pool2d", lambda x: ag.max_pool2d(x, 2), lambda: (distinct(2, 2, 4, 4),)),
    ("max_pool2d_overlap_pad", lambda x: ag.max_pool2d(x, 3, stride=1, padding=1), lambda: (distinct(1, 2, 4, 4),)),
    ("avg_pool2d", lambda x: ag.avg_pool2d(x, 2), lambda: (rand(2, 2, 4, 6),)),
    ("avg_pool2d_pad", lambda x: ag.avg_pool2d(x, 3, stride=2, padding=1), lambda: (rand(1, 1, 5, 5),)),
    ("dropout", lambda x: ag.dropout(x, 0.5, np.random.default_rng(7)), lambda: (rand(4, 4),)),
    ("composite", lambda a, b: ag.sum(ag.tanh(a @ b) ** 2, axis=0) / ag.sqrt(1.0 + ag.sum(b * b)), lambda: (rand(3, 4), rand(4, 2))),
]


@pytest.mark.parametrize("name,fn,make", CASES, ids=[c[0] for c in CASES])
def test_first_and_second_order_match_central_differences(name, fn, make):
    args = make()
    ag.check_grads(fn, args, order=2, rtol=1e-6)


@pytest.mark.parametrize("name,fn,make", CASES, ids=[c[0] for c in CASES])
def test_jvp_and_vjp_are_adjoint(name, fn, make):
    """<u, J v> from forward mode equals <J^T u, v> from reverse mode (to rounding)."""
    args = make()
    rng = np.random.default_rng(1)
    v = tuple(rng.standard_normal(a.shape) for a in args)
    out, jv = ag.jvp(fn, args, v)
    out2, vjp_fn = ag.vjp(fn, args)
    np.testing.assert_array_equal(out, out2)
    u = rng.standard_normal(np.shape(out))
    lhs = float(np.vdot(u, jv))
    rhs = sum(float(np.vdot(c, vi)) for c, vi in zip(vjp_fn(u), v))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_full_numeric_gradient_of_a_scalar_function():
    x = rand(3, 4)
    f = lambda a: ag.sum(ag.log_softmax(a) * np.arange(4.0))  # noqa: E731
    np.testing.assert_allclose(ag.grad(f)(x), ag.numeric_grad(f, x), rtol=1e-7, atol=1e-9)


# ---- higher order, closed forms ----------------------------------------------

def test_second_derivatives_of_scalar_functions_match_closed_forms():
    x = np.array(0.7)
    d2 = lambda f: ag.grad(lambda t: ag.grad(f)(t))  # noqa: E731
    assert float(d2(ag.sin)(x)) == pytest.approx(-math.sin(0.7), rel=1e-14)
    assert float(d2(ag.exp)(x)) == pytest.approx(math.exp(0.7), rel=1e-14)
    assert float(d2(ag.tanh)(x)) == pytest.approx(-2 * math.tanh(0.7) / math.cosh(0.7) ** 2, rel=1e-13)
    assert float(d2(lambda t: t ** 4)(x)) == pytest.approx(12 * 0.7 ** 2, rel=1e-14)
    assert float(d2(ag.log)(x)) == pytest.approx(-1 / 0.49, rel=1e-14)
    # third derivative of x^5 is 60 x^2
    d3 = ag.grad(lambda t: d2(lambda s: s ** 5)(t))
    assert float(d3(x)) == pytest.approx(60 * 0.49, rel=1e-13)


def test_hvp_of_a_quadratic_is_exact_and_hessian_matches():
    a = rand(5, 5)
    A = a @ a.T
    w, v = rand(5), rand(5)
    f = lambda w: 0.5 * w @ (A @ w)  # noqa: E731
    np.testing.assert_allclose(ag.hvp(f, w, v), A @ v, rtol=1e-13)
    np.testing.assert_allclose(ag.hessian(f)(w), A, rtol=1e-13, atol=1e-13)


def test_hvp_matches_finite_differences_of_gradients_on_an_mlp_loss():
    from reference import nn
    init, apply = nn.mlp([3, 6, 2], activation="tanh")
    params = init(0)
    x, y = rand(8, 3), np.arange(8) % 2
    loss = lambda p: ag.cross_entropy(apply(p, x), y)  # noqa: E731
    v = {k: rand(*p.shape) for k, p in params.items()}
    hv = ag.hvp(loss, params, v)
    h = 1e-6
    gp = ag.grad(loss)({k: params[k] + h * v[k] for k in params})
    gm = ag.grad(loss)({k: params[k] - h * v[k] for k in params})
    fd = [(gp[k] - gm[k]) / (2 * h) for k in params]
    assert ag.relative_error([hv[k] for k in params], fd) < 1e-7


def test_hessian_of_rosenbrock_at_the_optimum():
    f = lambda w: 100 * (w[1] - w[0] ** 2) ** 2 + (1 - w[0]) ** 2  # noqa: E731
    np.testing.assert_allclose(ag.hessian(f)(np.ones(2)), [[802, -400], [-400, 200]], rtol=1e-14)


def test_jacobian_forward_and_reverse_agree():
    W = rand(3, 5)
    f = lambda x: ag.tanh(W @ x)  # noqa: E731
    x = rand(5)
    jr = ag.jacobian(f, mode="rev")(x)
    jf = ag.jacobian(f, mode="fwd")(x)
    expect = (1 - np.tanh(W @ x) ** 2)[:, None] * W
    np.testing.assert_allclose(jr, expect, rtol=1e-13)
    np.testing.assert_allclose(jf, expect, rtol=1e-13)
    assert ag.jacobian(f)(x).shape == (3, 5)


def test_nested_grad_has_no_perturbation_confusion():
    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x  (Siskind & Pearlmutter's example)
    f = lambda x: x * ag.grad(lambda y: x * y)(np.array(1.0))  # noqa: E731
    assert float(ag.grad(f)(np.array(3.0))) == 6.0
    # the same with nested forward mode
    g = lambda x: x * ag.jvp(lambda y: x * y, (np.array(1.0),), (np.array(1.0),))[1]  # noqa: E731
    assert float(ag.jvp(g, (np.array(3.0),), (np.array(1.0),))[1]) == 6.0
    # and mixed: d/dx [d/dy (x y^2) at y = x] = d/dx [2 x^2] = 4x, forward over reverse and reverse over forward
    assert float(ag.jvp(lambda x: ag.grad(lambda y: x * y * y)(x), (np.array(3.0),), (np.array(1.0),))[1]) == 12.0
    assert float(ag.grad(lambda x: ag.jvp(lambda y: x * y * y, (x,), (np.array(1.0),))[1])(np.array(3.0))) == 12.0


def test_forward_mode_runs_no_backward_sweep(monkeypatch):
    from reference.autograd import functional, tensor
    calls = []
    real = tensor.backward
    monkeypatch.setattr(functional, "backward", lambda *a, **k: calls.append(1) or real(*a, **k))
    ag.jvp(lambda x: ag.sum(ag.tanh(x) ** 2), (rand(4),), (rand(4),))
    assert calls == []
    ag.grad(lambda x: ag.sum(ag.tanh(x) ** 2))(rand(4))
    assert calls == [1]


def test_grad_of_dict_params_has_the_same_structure():
    params = {"a": rand(2, 3), "b": rand(3)}
    g = ag.grad(lambda p: ag.sum(p["a"] * p["b"]))(params)
    assert set(g) == {"a", "b"}
    np.testing.assert_allclose(g["a"], np.broadcast_to(params["b"], (2, 3)))
    np.testing.assert_allclose(g["b"], params["a"].sum(0))
    vg = ag.value_and_grad(lambda p, s: s * ag.sum(p["b"]))(params, 2.0)
    assert float(vg[0]) == pytest.approx(2 * params["b"].sum())


def test_value_and_grad_with_aux():
    (val, aux), g = ag.value_and_grad(lambda w: (ag.sum(w * w), "aux"), has_aux=True)(np.ones(3))
    assert float(val) == 3.0 and aux == "aux"
    np.testing.assert_array_equal(g, 2 * np.ones(3))


def test_inputs_the_output_does_not_depend_on_get_zero_gradients():
    g = ag.grad(lambda p: ag.sum(p["a"] ** 2))({"a": np.ones(2), "b": np.ones(3)})
    np.testing.assert_array_equal(g["b"], np.zeros(3))


def test_deep_graphs_need_no_recursion():
    x = np.array(1.0)

    def f(t):
        for _ in range(5000):
            t = t * 1.0001
        return t

    assert float(ag.grad(f)(x)) == pytest.approx(1.0001 ** 5000, rel=1e-10)


def test_per_example_grads_match_a_loop():
    w = rand(3)
    X, y = rand(6, 3), rand(6)
    f = lambda w, X, y: (X @ w - y) ** 2  # noqa: E731
    pe = ag.per_example_grads(f)(w, X, y)
    for i in range(6):
        np.testing.assert_allclose(pe[i], 2 * (X[i] @ w - y[i]) * X[i], rtol=1e-13)


def test_max_ties_share_the_derivative():
    g = ag.grad(lambda x: ag.max(x))(np.array([1.0, 3.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    g = ag.grad(lambda x: ag.sum(ag.maximum(x, 0.0)))(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 1.0])


def test_stop_gradient_blocks_both_modes():
    x = rand(3)
    np.testing.assert_allclose(ag.grad(lambda a: ag.sum(a * ag.stop_gradient(a)))(x), x)
    np.testing.assert_allclose(ag.jvp(lambda a: a * ag.stop_gradient(a), (x,), (np.ones(3),))[1], x)


def test_relu_has_zero_derivative_at_zero_like_pytorch():
    np.testing.assert_array_equal(ag.grad(lambda x: ag.sum(ag.relu(x)))(np.array([-1.0, 0.0, 1.0])), [0, 0, 1])


# ---- dtypes: nothing is upcast -----------------------------------------------

@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       dtype=st.sampled_from([np.float32, np.float64]),
       op=st.sampled_from(["tanh", "exp", "softplus", "sigmoid", "square", "scaled", "logsumexp"]))
def test_dtype_is_preserved_through_value_grad_and_jvp(shape, dtype, op):
    fns = {
        "tanh": ag.tanh, "exp": ag.exp, "softplus": ag.softplus, "sigmoid": ag.sigmoid,
        "square": ag.square, "scaled": lambda a: 2.5 * a - np.float64(1.0) + a / 3,
        "logsumexp": lambda a: ag.logsumexp(a, axis=-1),
    }
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    f = lambda a: ag.sum(fns[op](a))  # noqa: E731
    val, g = ag.value_and_grad(f)(x)
    _, t = ag.jvp(fns[op], (x,), (np.ones_like(x),))
    assert val.dtype == dtype and g.dtype == dtype and t.dtype == dtype
    assert g.shape == x.shape
    # float32 results agree with float64 to float32 precision
    g64 = ag.grad(f)(x.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 4), inner=st.integers(1, 4), cols=st.integers(1, 4), seed=st.integers(0, 100))
def test_matmul_gradients_for_random_shapes(rows, inner, cols, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((rows, inner)), rng.standard_normal((inner, cols))
    ga, gb = ag.grad(lambda p: ag.sum(ag.tanh(p[0] @ p[1])))((a, b))
    s = 1 - np.tanh(a @ b) ** 2
    np.testing.assert_allclose(ga, s @ b.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, a.T @ s, rtol=1e-12, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 1000), data=st.data())
def test_broadcast_undo_for_random_shapes(shape, seed, data):
    # drop leading dims and set random dims to 1: b broadcasts against a
    k = data.draw(st.integers(0, len(shape)))
    bshape = [1 if data.draw(st.booleans()) else s for s in shape[k:]]
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shape), rng.standard_normal(bshape)
    ag.check_grads(lambda a, b: a * b + b, (a, b), order=1)
    gb = ag.grad(lambda b: ag.sum(a * b))(b)
    assert gb.shape == b.shape


def test_mixed_float_dtypes_are_rejected():
    x32, x64 = np.ones(3, np.float32), np.ones(3)
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        ag.add(Tensor(x32), Tensor(x64))
    with pytest.raises(TypeError, match="upcast"):
        Tensor(x32) * x64


# ---- clear errors ------------------------------------------------------------

def test_shape_mismatch_names_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"ag\.add.*\(3, 4\).*\(5,\)"):
        ag.add(rand(3, 4), rand(5))
    with pytest.raises(ValueError, match=r"ag\.matmul.*\(3, 4\).*\(3, 4\)"):
        ag.matmul(rand(3, 4), rand(3, 4))
    with pytest.raises(ValueError, match="conv2d.*channels"):
        ag.conv2d(rand(1, 3, 5, 5), rand(2, 2, 3, 3))
    with pytest.raises(ValueError, match="mse_loss.*shape"):
        ag.mse_loss(rand(3), rand(3, 1))
    with pytest.raises(ValueError, match="cross_entropy.*labels"):
        ag.cross_entropy(rand(3, 4), np.array([0, 1]))


def test_integer_inputs_are_rejected_where_floats_are_needed():
    with pytest.raises(TypeError, match="floating"):
        Tensor(np.arange(3))
    with pytest.raises(TypeError, match="floating-point.*int64"):
        ag.grad(lambda x: ag.sum(x))(np.arange(3))
    with pytest.raises(TypeError, match="'w'.*int"):
        ag.grad(lambda p: ag.sum(p["w"]))({"w": np.arange(3)})


def test_grad_of_a_non_scalar_function_is_an_error():
    with pytest.raises(TypeError, match="scalar.*shape \\(3,\\)"):
        ag.grad(lambda x: x * 2)(np.ones(3))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="reduction"):
        ag.cross_entropy(rand(2, 3), np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="approximate"):
        ag.gelu(rand(2), approximate="erf")
    with pytest.raises(ValueError, match="dropout.*p"):
        ag.dropout(rand(2), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="jacobian.*mode"):
        ag.jacobian(ag.tanh, mode="both")
    with pytest.raises(ValueError, match="tangent"):
        ag.jvp(ag.tanh, (rand(3),), (rand(4),))
    with pytest.raises(TypeError, match="ufunc"):
        np.exp(Tensor(rand(3)))


def test_inputs_are_not_mutated():
    x = rand(3, 4)
    before = x.copy()
    ag.grad(lambda a: ag.sum(ag.exp(a) * a))(x)
    ag.jvp(lambda a: a * a, (x,), (x,))
    np.testing.assert_array_equal(x, before)
