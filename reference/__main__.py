"""Command line: ``python -m reference <command>`` (also installed as ``reference``).

    list       optimizers, schedules and problems
    papers     the catalog of covered papers (--family, --kind, --markdown)
    run        one optimizer on a problem: progress bar, summary, optional figure
    compare    several optimizers on a problem over seeds: table and figure
    golden     write an oracle trajectory file for checking a faster implementation
    figures    regenerate the PNGs in figures/
    demo       the guided tour (about a minute on a laptop CPU)

Optimizers are given as ``name`` or ``name:key=value,key=value``, e.g.
``adam:lr=0.01,beta2=0.99``. Every command has ``--help``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


class CLIError(Exception):
    pass


def _value(text):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_optimizer(spec):
    """``"adam:lr=0.01,beta1=0.9"`` -> ``("adam", {"lr": 0.01, "beta1": 0.9})``.

    A wrapper's inner optimizer is named by ``inner=NAME`` and configured with
    ``inner.KEY=VALUE``: ``clip_grad_norm:max_norm=1,inner=sgd,inner.lr=0.1``.
    """
    from . import optim
    name, _, rest = spec.partition(":")
    if name not in optim.names():
        raise CLIError(f"unknown optimizer {name!r}; valid names: {', '.join(optim.names())}")
    hp, inner_hp = {}, {}
    for item in filter(None, rest.split(",")):
        key, eq, val = item.partition("=")
        if not eq:
            raise CLIError(f"bad hyperparameter {item!r} in {spec!r}: write key=value")
        key = key.strip()
        if key.startswith("inner."):
            inner_hp[key[len("inner."):]] = _value(val.strip())
        else:
            hp[key] = _value(val.strip())
    if "inner" in hp:
        inner_name, _ = parse_optimizer(str(hp["inner"]))
        hp["inner"] = optim.create(inner_name, **inner_hp)
    elif inner_hp:
        raise CLIError(f"{spec!r} sets inner.* hyperparameters but names no inner=OPTIMIZER")
    return name, hp


def _problem(name, settings):
    from . import problems
    if name not in problems.names():
        raise CLIError(f"unknown problem {name!r}; valid names: {', '.join(problems.names())}")
    kw = json.loads(settings) if settings else {}
    return problems.create(name, **kw)


def _cmd_list(args):
    from . import optim, problems
    print("optimizers:", ", ".join(optim.names()))
    try:
        from . import schedules
        print("schedules: ", ", ".join(schedules.names()))
    except ImportError:
        pass
    print("problems:  ", ", ".join(problems.names()))
    return 0


def _cmd_papers(args):
    from . import catalog
    if args.markdown:
        sys.stdout.write(catalog.markdown_table())
        return 0
    rows = catalog.entries(family=args.family, kind=args.kind)
    if not rows:
        print("no papers match")
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['family']:24s} {r['name']:{width}s} {r['kind'][:5]:5s} {r['year'] or '':4} {r['title']}")
    print(f"{len(rows)} papers")
    return 0


def _figure_out(path):
    if path:
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
    return path


def _cmd_run(args):
    from . import optim, plot, train
    prob = _problem(args.problem, args.settings)
    name, hp = parse_optimizer(args.optimizer)
    hist = train.run(prob, optim.create(name, **hp), args.steps, batch_size=args.batch_size, seed=args.seed,
                     eval_every=args.eval_every or None, label=args.optimizer)
    print(f"{args.optimizer} on {prob.name}: {args.steps} steps in {hist.wall_time:.2f} s, "
          f"final loss {hist.final_loss:.6g}")
    for e in hist.evals[-1:]:
        print("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in e.items()))
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        ax = plot.loss_curves({args.optimizer: hist}, title=prob.name)
        plot.save(ax.figure, _figure_out(args.out))
        print(f"figure: {args.out}")
    return 0


def _cmd_compare(args):
    from . import optim, plot, train
    prob = _problem(args.problem, args.settings)
    opts = {}
    for spec in args.optimizers:
        name, hp = parse_optimizer(spec)
        opts[spec] = optim.create(name, **hp)
    table = train.compare(prob, opts, args.steps, seeds=tuple(range(args.seeds)), batch_size=args.batch_size,
                          target=args.target)
    print(table)
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        with plot.style():
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
            plot.loss_curves(table, ax=axes[0], title=prob.name)
            plot.compare_bars(table, ax=axes[1])
            plot.save(fig, _figure_out(args.out))
        print(f"figure: {args.out}")
    return 0


def _cmd_golden(args):
    from . import optim, oracle
    if args.name not in optim.names():
        raise CLIError(f"unknown optimizer {args.name!r}; valid names: {', '.join(optim.names())}")
    hp = json.loads(args.hparams) if args.hparams else {}
    out = args.out or f"{args.name}.{args.format or 'npz'}"
    path = oracle.golden(args.name, steps=args.steps, out=out, format=args.format, problem=args.problem,
                         seed=args.seed, dtype=args.dtype, hparams=hp)
    print(f"wrote {path}")
    return 0


def _cmd_figures(args):
    from . import figures
    for p in figures.generate(args.out, only=args.only or None):
        print(f"wrote {p}")
    return 0


def _cmd_demo(args):
    """The guided tour: autograd check, the problems, and optimizers compared on two spirals."""
    import numpy as np

    from . import autograd as ag, nn, optim, plot, problems, train

    print("== 1. The autograd, checked against central differences ==")
    init, apply = nn.mlp([2, 16, 2], activation="tanh")
    params = init(0)
    x = np.random.default_rng(0).standard_normal((32, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    err = ag.check_grads(lambda p: ag.cross_entropy(apply(p, x), y), (params,), order=2)
    print(f"MLP loss: forward and reverse mode, 1st and 2nd order, agree with finite differences "
          f"(worst relative error {err:.1e})")

    print("\n== 2. The problems ==")
    for name in problems.names():
        p = problems.create(name)
        opt = p.optimal_value
        n = p.n_train
        print(f"  {name:20s} {p.dim:6d} params  {'%5d examples' % n if n else '     function'}"
              f"  optimum {'%.4g' % opt if opt is not None else '-'}")

    print(f"\n== 3. Optimizers on an MLP for two spirals ({args.steps} steps, minibatch 64, "
          f"{args.seeds} seeds) ==")
    contenders = {"sgd": ("sgd", {"lr": 0.1}), "momentum": ("sgd", {"lr": 0.05, "momentum": 0.9}),
                  "rmsprop": ("rmsprop", {"lr": 3e-3}), "adam": ("adam", {"lr": 1e-2}),
                  "adamw": ("adamw", {"lr": 1e-2, "weight_decay": 1e-2})}
    opts = {label: optim.create(n, **hp) for label, (n, hp) in contenders.items() if n in optim.names()}
    prob = problems.create("two_spirals")
    table = train.compare(prob, opts, args.steps, seeds=tuple(range(args.seeds)), batch_size=64)
    print(table)
    for label, hs in table.histories.items():
        accs = [prob.evaluate(h.params).get("test_accuracy", float("nan")) for h in hs]
        print(f"  {label:10s} test accuracy {np.mean(accs):.3f}")
    import matplotlib
    matplotlib.use("Agg")
    ax = plot.loss_curves(table, title="two spirals: training loss (median and range over seeds)")
    plot.save(ax.figure, _figure_out(args.out))
    print(f"\nfigure: {args.out}")
    print("next: python -m reference compare rosenbrock adam:lr=0.01 sgd:lr=0.001,momentum=0.9 --out cmp.png")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m reference",
                                     description="Reference implementations of gradient-based training algorithms.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("list", help="optimizers, schedules and problems")
    p.set_defaults(fn=_cmd_list)

    p = sub.add_parser("papers", help="the catalog of covered papers")
    p.add_argument("--family", help="only this family (e.g. optimizer-first-order)")
    p.add_argument("--kind", choices=["implementation", "demonstration"])
    p.add_argument("--markdown", action="store_true", help="print PAPERS.md")
    p.set_defaults(fn=_cmd_papers)

    def common(p):
        p.add_argument("problem", help="a problem name (see `list`)")
        p.add_argument("--settings", help="problem settings as JSON, e.g. '{\"dim\": 10}'")
        p.add_argument("--steps", type=int, default=500)
        p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: full batch)")
        p.add_argument("--out", help="write a figure (PNG) here")

    p = sub.add_parser("run", help="one optimizer on a problem")
    common(p)
    p.add_argument("optimizer", help="name[:key=value,...], e.g. adam:lr=0.01")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=0)
    p.set_defaults(fn=_cmd_run)

    p = sub.add_parser("compare", help="several optimizers on a problem over seeds")
    common(p)
    p.add_argument("optimizers", nargs="+", help="name[:key=value,...] each")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..n-1)")
    p.add_argument("--target", type=float, default=None, help="report steps to reach this loss")
    p.set_defaults(fn=_cmd_compare)

    p = sub.add_parser("golden", help="write a float64 trajectory to check another implementation against")
    p.add_argument("name", help="optimizer name")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--out", help="output path (default NAME.npz / NAME.json)")
    p.add_argument("--format", choices=["npz", "json"], default=None,
                   help="file format (default: from the --out suffix, else npz)")
    p.add_argument("--problem", default=None, help="problem name (default: the oracle module's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float64")
    p.add_argument("--hparams", help="hyperparameters as JSON, e.g. '{\"lr\": 0.01}'")
    p.set_defaults(fn=_cmd_golden)

    p = sub.add_parser("figures", help="regenerate figures/")
    p.add_argument("--out", default="figures")
    p.add_argument("--only", nargs="*", help="only these file names")
    p.set_defaults(fn=_cmd_figures)

    p = sub.add_parser("demo", help="the guided tour (about a minute)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="demo.png", help="where to write the figure")
    p.set_defaults(fn=_cmd_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, FloatingPointError) as e:
        # the library's own errors name the parameter, the value and what was expected (a bad
        # hyperparameter, an optimizer that needs an oracle capability the problem lacks, a
        # divergence): say that, not a traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
