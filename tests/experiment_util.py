"""Helpers shared by the tests of ``reference.experiments`` (the DEMONSTRATE papers)."""
import pytest

from reference import catalog


def assert_plots(module, result):
    """``module.plot(result)`` draws on a fresh figure (Agg backend) and returns its axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ax = module.plot(result)
    assert ax is not None
    plt.close("all")


def assert_demonstrations(titles, family, modules=()):
    """Each ``name: title`` of ``titles`` is in the catalog as a demonstration of ``family`` under the
    paper's exact title, and each module's ``run`` rejects an unknown setting with a ``TypeError``."""
    by_name = {e["name"]: e for e in catalog.entries(kind="demonstration")}
    for name, title in titles.items():
        assert by_name[name]["title"] == title
        assert by_name[name]["family"] == family
    for module in modules:
        with pytest.raises(TypeError, match="unknown settings"):
            module.run(bogus=1)
