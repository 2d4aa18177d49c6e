"""Training loops, plots, the catalog and the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from reference import catalog, optim, plot, train
from reference.__main__ import main, parse_optimizer, CLIError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_is_reproducible_and_records_the_loss_before_each_step():
    h1 = train.run("two_spirals", optim.create("adam", lr=1e-2), 20, batch_size=16, seed=3, progress=False)
    h2 = train.run("two_spirals", optim.create("adam", lr=1e-2), 20, batch_size=16, seed=3, progress=False)
    np.testing.assert_array_equal(h1.loss, h2.loss)
    assert h1.loss.shape == (20,) and h1.state["step"] == 20
    # the first recorded loss is the loss at the initial params on the first batch
    from reference import problems
    p = problems.create("two_spirals")
    rng = np.random.default_rng(3)
    first = p.loss(p.init(3), p.sample_batch(rng, 16))
    assert h1.loss[0] == float(first)


def test_run_full_batch_matches_a_hand_loop():
    from reference import problems
    p = problems.create("rosenbrock")
    h = train.run(p, optim.create("sgd", lr=1e-3), 10, progress=False, record_path=True)
    w = p.init(0)
    for k in range(10):
        loss, g = p.oracle()(w)
        assert h.loss[k] == float(loss)
        w = {"w": w["w"] - 1e-3 * g["w"]}
        np.testing.assert_array_equal(h.path[k]["w"], w["w"])


def test_the_optimizer_sees_the_rich_oracle_and_full_gradient_requests():
    seen = []

    class Probe(optim.Optimizer):
        name = "probe"
        defaults = dict(lr=0.1)

        def needs_full_gradient(self, state):
            return state["step"] % 2 == 0

        def update(self, params, grads, state, t, hp):
            return params, {}

        def step(self, params, state, oracle):
            seen.append((hasattr(oracle, "hvp"), oracle.batch is None))
            oracle(params)
            return params, {"step": state["step"] + 1}

    train.run("blobs", Probe(), 4, batch_size=8, progress=False)
    assert seen == [(True, True), (True, False), (True, True), (True, False)]


def test_callbacks_can_stop_and_evals_are_recorded():
    h = train.run("blobs", "adam", 50, progress=False, eval_every=10,
                  callbacks=[lambda step, p, s, loss: step == 25])
    assert h.stopped_early and len(h.loss) == 25
    assert [e["step"] for e in h.evals] == [10, 20, 25]
    assert "accuracy" in h.evals[-1]


def test_run_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        train.run("rosenbrock", "adam", 5, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="steps"):
        train.run("rosenbrock", "adam", -1, progress=False)
    with pytest.raises(KeyError, match="valid names"):
        train.run("nope", "adam", 5, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        train.run("rosenbrock", 3.0, 5, progress=False)


def test_compare_table_over_seeds():
    t = train.compare("rosenbrock", {"sgd": optim.create("sgd", lr=1e-3, momentum=0.9),
                                     "slow": optim.create("sgd", lr=1e-5)}, 300, seeds=(0, 1), target=1e-1,
                      progress=False)
    assert [r["label"] for r in t.rows] == ["sgd", "slow"]
    fast, slow = t.rows
    assert fast["final_mean"] < slow["final_mean"]
    assert fast["reached"] == 2 and slow["reached"] == 0 and slow["steps_to_target"] is None
    assert "steps to 0.1" in str(t)


def test_plots_write_pngs(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from reference import problems
    p = problems.create("rosenbrock")
    t = train.compare(p, {"adam": optim.create("adam", lr=0.05)}, 30, seeds=(0, 1), progress=False,
                      record_path=True)
    for fn in (lambda: plot.loss_curves(t), lambda: plot.trajectories_2d(p, t), lambda: plot.compare_bars(t)):
        ax = fn()
        path = plot.save(ax.figure, tmp_path / "f.png")
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        plot.trajectories_2d(problems.create("rosenbrock", dim=3), t)


def test_parse_optimizer_spec():
    assert parse_optimizer("adam:lr=0.01,beta1=0.8") == ("adam", {"lr": 0.01, "beta1": 0.8})
    assert parse_optimizer("sgd:nesterov=true,momentum=0.9") == ("sgd", {"nesterov": True, "momentum": 0.9})
    with pytest.raises(CLIError, match="valid names"):
        parse_optimizer("adamm")
    with pytest.raises(CLIError, match="key=value"):
        parse_optimizer("adam:lr")
    name, hp = parse_optimizer("clip_grad_norm:max_norm=2,inner=sgd,inner.lr=0.1,inner.momentum=0.9")
    assert name == "clip_grad_norm" and hp["max_norm"] == 2
    assert hp["inner"].name == "sgd" and hp["inner"].hparams["momentum"] == 0.9
    with pytest.raises(CLIError, match="inner"):
        parse_optimizer("clip_grad_norm:inner.lr=0.1")


def test_cli_list_papers_run_compare(tmp_path, capsys):
    assert main(["list"]) == 0
    assert "adam" in capsys.readouterr().out
    assert main(["papers"]) == 0
    assert "Adam: A Method for Stochastic Optimization" in capsys.readouterr().out
    assert main(["run", "rosenbrock", "adam:lr=0.01", "--steps", "20", "--out", str(tmp_path / "r.png")]) == 0
    assert os.path.exists(tmp_path / "r.png")
    assert main(["compare", "quadratic", "adam:lr=0.1", "sgd:lr=0.1", "--steps", "20", "--seeds", "2",
                 "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "quadratic: 20 steps" in out and os.path.exists(tmp_path / "c.png")
    assert main(["run", "nope", "adam"]) == 2
    assert "valid names" in capsys.readouterr().err
    # library errors reach the user as one line naming what is wrong, not as a traceback
    assert main(["golden", "egn", "--steps", "2", "--out", str(tmp_path / "g.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TypeError:") and "'outputs' capability" in err and "Traceback" not in err
    assert main(["golden", "adam", "--steps", "2", "--hparams", '{"lr": -1}', "--out", str(tmp_path / "a.npz")]) == 2
    assert "lr" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "g.npz") and not os.path.exists(tmp_path / "a.npz")


def test_cli_help_everywhere():
    for cmd in ([], ["list"], ["papers"], ["run"], ["compare"], ["golden"], ["figures"], ["demo"]):
        r = subprocess.run([sys.executable, "-m", "reference", *cmd, "--help"], capture_output=True, text=True,
                           cwd=ROOT)
        assert r.returncode == 0 and "usage" in r.stdout


def test_demo_runs_with_a_tiny_budget(tmp_path, capsys):
    assert main(["demo", "--steps", "5", "--seeds", "1", "--out", str(tmp_path / "demo.png")]) == 0
    out = capsys.readouterr().out
    assert "optimizer | final loss" in out and os.path.exists(tmp_path / "demo.png")


def test_catalog_titles_are_exact_corpus_titles_and_papers_md_is_current():
    entries = catalog.entries()
    assert any(e["name"] == "adam" for e in entries)
    corpus = os.path.join(ROOT, "..", "shared", "papers.jsonl")
    if os.path.exists(corpus):
        titles = {json.loads(line)["title"] for line in open(corpus)}
        for e in entries:
            assert e["title"] in titles, f"catalog title not in papers.jsonl: {e['title']!r}"
    with open(os.path.join(ROOT, "PAPERS.md")) as f:
        assert f.read() == catalog.markdown_table(), "PAPERS.md is stale: python -m reference papers --markdown > PAPERS.md"
    for e in entries:
        assert os.path.exists(os.path.join(ROOT, e["module"].replace(".", "/") + ".py")), e["module"]
