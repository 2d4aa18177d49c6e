"""Backend selection and the params-tree helpers."""
import numpy as np
import pytest

from reference import backend, tree


def test_xp_of_numpy_and_neutral_values():
    assert backend.xp_of(np.ones(2), 3.0, None) is np
    assert backend.xp_of({"a": np.ones(2)}, [np.zeros(1)]) is np
    assert backend.xp_of(1.0) is np


def test_fuse_keeps_small_calls_plain():
    def f(a, b):
        return a * b + 1
    fused = backend.fuse(f)
    np.testing.assert_array_equal(fused(np.ones(3), np.full(3, 2.0)), np.full(3, 3.0))
    assert backend.fuse(kernel_name="x")(f)(2.0, 3.0) == 7.0


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_blocked_fuse_is_bit_identical_to_the_plain_call(threads, monkeypatch):
    monkeypatch.setenv("REFERENCE_THREADS", threads)

    def update(w, g, m, v, lr, b1, b2, eps):
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        return w - lr * m / (v ** 0.5 + eps), m, v

    rng = np.random.default_rng(0)
    n = 5 * backend.BLOCK + 123  # several blocks and a ragged last one
    for dtype in (np.float32, np.float64):
        args = [rng.standard_normal((n // 7, 7)).astype(dtype) for _ in range(3)] + [
            np.abs(rng.standard_normal((n // 7, 7))).astype(dtype)]
        plain = update(*args, 1e-3, 0.9, 0.999, 1e-8)
        fused = backend.fuse(update)(*args, 1e-3, 0.9, 0.999, 1e-8)
        for p, f in zip(plain, fused):
            assert f.dtype == dtype and f.shape == p.shape
            np.testing.assert_array_equal(f, p)
    # a 0-d array operand is passed to every block; mismatched shapes fall back to a plain call
    big = rng.standard_normal(5 * backend.BLOCK)
    np.testing.assert_array_equal(backend.fuse(lambda a, s: a * s)(big, np.asarray(3.0)), big * 3.0)
    other = rng.standard_normal((1,))
    np.testing.assert_array_equal(backend.fuse(lambda a, b: a + b)(big, other), big + other)


def test_to_device_cpu_is_a_no_op_and_bad_device_is_named():
    t = {"a": np.ones(2)}
    assert backend.to_device(t, "cpu")["a"] is t["a"]
    with pytest.raises(ValueError, match="device.*'tpu'"):
        backend.to_device(t, "tpu")
    if not backend.cupy_available():
        with pytest.raises(RuntimeError, match="CuPy"):
            backend.to_device(t, "gpu")


def test_dtype_helpers_reject_integers_and_mixes():
    with pytest.raises(TypeError, match="w must be a floating-point array.*int64"):
        backend.check_float("w", np.arange(3))
    with pytest.raises(TypeError, match="mixed float dtypes"):
        backend.same_dtype("opt", w=np.ones(2, np.float32), g=np.ones(2))
    assert backend.same_dtype("opt", w=np.ones(2), g=np.ones(2)) == np.float64
    assert backend.float_dtype("float32") == np.float32
    with pytest.raises(TypeError, match="int32"):
        backend.float_dtype("int32")


def test_tree_arithmetic():
    a = {"w": np.array([1.0, 2.0]), "b": np.array(3.0)}
    b = {"w": np.array([0.5, -1.0]), "b": np.array(1.0)}
    np.testing.assert_array_equal(tree.add(a, b)["w"], [1.5, 1.0])
    np.testing.assert_array_equal(tree.sub(a, b)["b"], 2.0)
    np.testing.assert_array_equal(tree.scale(2.0, a)["w"], [2.0, 4.0])
    np.testing.assert_array_equal(tree.axpy(-2.0, b, a)["w"], [0.0, 4.0])
    assert float(tree.vdot(a, b)) == 0.5 - 2.0 + 3.0
    assert float(tree.global_norm(a)) == pytest.approx(np.sqrt(1 + 4 + 9))
    assert tree.size(a) == 3 and tree.nbytes(a) == 24
    z = tree.zeros_like(a)
    assert z["w"].dtype == np.float64 and not z["w"].any()


def test_nbytes_counts_nested_optimizer_state():
    state = {"step": 3, "m": {"w": np.ones(4)}, "v": {"w": np.ones(4, np.float32)}, "none": None}
    assert tree.nbytes(state) == 32 + 16


def test_tree_reductions_stay_arrays():
    a = {"w": np.ones(3)}
    assert isinstance(tree.vdot(a, a), np.ndarray) or np.isscalar(tree.vdot(a, a))
    assert isinstance(tree.global_norm(a), (np.ndarray, np.floating))


def test_tree_flatten_round_trip():
    a = {"w": np.arange(6.0).reshape(2, 3), "b": np.array([7.0])}
    vec, spec = tree.flatten(a)
    np.testing.assert_array_equal(vec, [0, 1, 2, 3, 4, 5, 7])
    back = tree.unflatten(vec, spec)
    for k in a:
        np.testing.assert_array_equal(back[k], a[k])
    with pytest.raises(ValueError, match="length 7"):
        tree.unflatten(vec[:-1], spec)
    with pytest.raises(TypeError, match="mixed dtypes"):
        tree.flatten({"a": np.ones(1), "b": np.ones(1, np.float32)})


def test_tree_key_mismatch_names_the_keys():
    with pytest.raises(KeyError, match=r"missing \['b'\], unexpected \['c'\]"):
        tree.add({"a": np.ones(1), "b": np.ones(1)}, {"a": np.ones(1), "c": np.ones(1)})


def test_tree_helpers_do_not_mutate():
    a = {"w": np.ones(2)}
    tree.axpy(3.0, a, a)
    tree.scale(2.0, a)
    np.testing.assert_array_equal(a["w"], np.ones(2))


def test_all_finite_names_the_first_bad_key():
    assert tree.all_finite({"a": np.ones(2)}) is None
    assert tree.all_finite({"a": np.ones(2), "b": np.array([1.0, np.nan])}) == "b"
