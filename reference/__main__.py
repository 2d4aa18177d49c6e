"""Command line: ``python -m reference <command>``.

Commands: ``demo`` (the guided tour), ``problems`` (the synthetic problems).
Every command has ``--help``.
"""
from __future__ import annotations

import argparse
import sys
import time


def _demo(args):
    """A one-minute tour: the autograd checked against central differences, the
    problem zoo, and an MLP trained on two spirals with plain gradient descent."""
    import numpy as np
    from tqdm import tqdm

    from . import autograd as ag, nn, problems

    print("== 1. The autograd, checked against central differences ==")
    init, apply = nn.mlp([2, 16, 2], activation="tanh")
    params = init(0)
    x = np.random.default_rng(0).standard_normal((32, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    err = ag.check_grads(lambda p: ag.cross_entropy(apply(p, x), y), (params,), order=2)
    print(f"MLP loss: reverse and forward mode, 1st and 2nd order, agree with finite differences "
          f"(worst relative error {err:.1e})")
    v = {k: np.ones_like(p) for k, p in params.items()}
    hv = ag.hvp(lambda p: ag.cross_entropy(apply(p, x), y), params, v)
    print(f"Hessian-vector product by forward-over-reverse: |Hv| = {np.sqrt(sum((h ** 2).sum() for h in hv.values())):.4f}")

    print("\n== 2. The problems ==")
    for name in problems.names():
        p = problems.create(name)
        opt = p.optimal_value
        n = p.n_train
        print(f"  {name:22s} {p.dim:6d} params  {'%6d examples' % n if n else '      function'}"
              f"  optimal value {'%.4g' % opt if opt is not None else '-'}")

    print("\n== 3. Training an MLP on two spirals (full-batch gradient descent with momentum) ==")
    prob = problems.create("two_spirals")
    params = prob.init(args.seed)
    oracle = prob.oracle()
    velocity = {k: np.zeros_like(w) for k, w in params.items()}
    start = time.perf_counter()
    bar = tqdm(range(args.steps), disable=not sys.stderr.isatty(), desc="GD+momentum")
    for step in bar:
        loss, g = oracle(params)
        velocity = {k: 0.9 * velocity[k] + g[k] for k in params}
        params = {k: params[k] - args.lr * velocity[k] for k in params}
        if step % 50 == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}")
    metrics = prob.evaluate(params)
    print("after {} steps ({:.1f} s): ".format(args.steps, time.perf_counter() - start)
          + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return 0


def _problems(args):
    from . import problems
    for name in problems.names():
        doc = (problems.get_class(name).__doc__ or "").strip().splitlines()
        print(f"{name:22s} {doc[0] if doc else ''}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reference",
                                     description="Reference implementations of gradient-based training algorithms.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the guided tour (about a minute on a laptop CPU)")
    d.add_argument("--steps", type=int, default=1500, help="training steps for the spirals MLP")
    d.add_argument("--lr", type=float, default=0.05, help="learning rate")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(fn=_demo)
    p = sub.add_parser("problems", help="list the synthetic problems")
    p.set_defaults(fn=_problems)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
