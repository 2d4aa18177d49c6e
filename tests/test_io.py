"""State files: .npz, exact round trips, clear errors."""
import numpy as np
import pytest

from reference import io


def test_round_trip_is_exact_for_nested_trees(tmp_path):
    tree = {"params": {"0.weight": np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32),
                       "0.bias": np.arange(3.0)},
            "state": {"step": 7, "lr": 0.1, "flag": True, "none": None, "m": {"0.weight": np.ones((3, 2))},
                      "empty": {}}}
    path = io.save(tmp_path / "t.npz", tree)
    back = io.load(path)
    assert back["state"]["step"] == 7 and type(back["state"]["step"]) is int
    assert back["state"]["lr"] == 0.1 and type(back["state"]["lr"]) is float
    assert back["state"]["flag"] is True and back["state"]["none"] is None and back["state"]["empty"] == {}
    w = back["params"]["0.weight"]
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, tree["params"]["0.weight"])
    np.testing.assert_array_equal(back["state"]["m"]["0.weight"], np.ones((3, 2)))


def test_files_are_plain_npz_without_pickle(tmp_path):
    path = io.save(tmp_path / "t.npz", {"a": np.ones(2)})
    with np.load(path, allow_pickle=False) as z:
        assert "a" in z.files


def test_not_ours_truncated_and_missing_keys_are_clear_errors(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, a=np.ones(2))
    with pytest.raises(ValueError, match="not a file written by reference.io.save"):
        io.load(other)
    good = io.save(tmp_path / "good.npz", {"params": {"w": np.ones(4)}})
    data = open(good, "rb").read()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        io.load(bad)
    with pytest.raises(ValueError, match=r"has no \['state'\]"):
        io.load(good, expect_keys=["params", "state"])


def test_bad_keys_and_leaves_are_named():
    with pytest.raises(ValueError, match="'a/b'"):
        io.flatten_tree({"a/b": np.ones(1)})
    with pytest.raises(TypeError, match="'x'.*str"):
        io.flatten_tree({"x": "text"})
