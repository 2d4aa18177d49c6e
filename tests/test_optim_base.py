"""The optimizer machinery itself: registry, validation edge cases, schedules as lr."""
import math

import numpy as np
import pytest

from reference import optim, schedules


def test_numpy_scalar_hyperparameters_do_not_change_the_dtype():
    opt = optim.create("adam", lr=np.float64(1e-3), beta1=np.float32(0.9))
    assert type(opt.hparams["lr"]) is float and type(opt.hparams["beta1"]) is float
    w = {"w": np.ones(3, np.float32)}
    w2, _ = opt.step(w, opt.init(w), lambda p: (np.float32(0), {"w": np.ones(3, np.float32)}))
    assert w2["w"].dtype == np.float32


@pytest.mark.parametrize("name,hp", [("sgd", "weight_decay"), ("adam", "eps"), ("sgd", "lr")])
def test_infinite_hyperparameters_are_rejected(name, hp):
    with pytest.raises(ValueError, match=hp):
        optim.create(name, **{hp: math.inf})


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KeyError, match="valid names: .*adam"):
        optim.create("adamm")
    with pytest.raises(TypeError, match="unknown hyperparameter.*'betta1'"):
        optim.create("adam", betta1=0.9)


def test_factories_and_registry_agree():
    assert set(optim.names()) <= set(dir(optim))
    assert optim.adam(lr=0.1).hparams["lr"] == 0.1
    from reference.optim.adam import adam_kernel  # the paper file stays importable
    assert callable(adam_kernel)


def test_schedule_is_evaluated_at_the_number_of_steps_taken():
    seen = []
    opt = optim.create("sgd", lr=lambda k: seen.append(k) or 0.1)
    w = {"w": np.ones(2)}
    s = opt.init(w)
    for _ in range(3):
        w, s = opt.step(w, s, lambda p: (0.0, {"w": np.ones(2)}))
    assert seen == [0, 1, 2]
    lr = schedules.linear_decay(0.3, total_steps=2)
    opt = optim.create("sgd", lr=lr)
    w = {"w": np.zeros(1)}
    s = opt.init(w)
    for _ in range(3):
        w, s = opt.step(w, s, lambda p: (0.0, {"w": np.ones(1)}))
    np.testing.assert_allclose(w["w"], [-(0.3 + 0.15 + 0.0)])


def test_grads_with_wrong_keys_shapes_or_dtype_are_named():
    opt = optim.create("sgd")
    w = {"w": np.ones(2)}
    s = opt.init(w)
    with pytest.raises(KeyError, match="expected keys \\['w'\\]"):
        opt.step(w, s, lambda p: (0.0, {"v": np.ones(2)}))
    with pytest.raises(ValueError, match="grads\\['w'\\] has shape \\(3,\\)"):
        opt.step(w, s, lambda p: (0.0, {"w": np.ones(3)}))
    with pytest.raises(ValueError, match="float32"):
        opt.step(w, s, lambda p: (0.0, {"w": np.ones(2, np.float32)}))


def test_unchecked_skips_the_finite_check_only_inside():
    opt = optim.create("sgd")
    w = {"w": np.ones(2)}
    bad = lambda p: (0.0, {"w": np.array([np.nan, 1.0])})  # noqa: E731
    with optim.unchecked():
        opt.step(w, opt.init(w), bad)
    with pytest.raises(FloatingPointError, match="'w' at step 1"):
        opt.step(w, opt.init(w), bad)
