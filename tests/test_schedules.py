"""Tests of ``reference.schedules``.

* golden agreement with ``torch.optim.lr_scheduler`` (the lr torch applies at
  each of 101 steps, and its closed form where it has one) to 1e-12, from the
  committed ``tests/golden/schedules_torch.npz`` (regenerate with
  ``python tests/golden/make_schedules_golden.py``; the ``peer`` test reruns
  it when torch is installed);
* hand-computed values (wsd, linear decay with a floor, restarts);
* properties: monotone decays, warmup reaching its target exactly, a flat
  stable phase, exact ends;
* a schedule as ``lr`` of ``reference.optim`` gives the same trajectory as a
  hand-written loop that changes lr every step (with torch's lr values);
* the step check, argument validation, repr / spec / registry / catalog hook.
"""
import dataclasses
import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest

from reference import catalog, optim, problems
from reference import schedules as S
from reference.schedules import base as schedules_base

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
GOLDEN = np.load(GOLDEN_DIR / "schedules_torch.npz")
META = json.loads(str(GOLDEN["meta"]))
STEPS = META["steps"]
RTOL, ATOL = 1e-12, 1e-15

# ---- golden agreement with torch.optim.lr_scheduler ----------------------------------------

#: golden case (see META["cases"] for the torch call) -> our schedules that must reproduce it
TORCH_EQUIVALENTS = {
    "step_lr": [S.step_decay(0.1, step_size=7, gamma=0.5)],
    "multistep_lr": [S.multistep(0.1, milestones=[10, 30, 60], gamma=0.3)],
    "exponential_lr": [S.exponential(0.1, gamma=0.97)],
    "cosine_lr": [S.cosine(0.1, total_steps=100, final=0.001)],
    "cosine_lr_zero": [S.cosine(0.1, total_steps=100)],
    "cosine_warm_restarts": [S.cosine_restarts(0.1, period=10, mult=2, final=0.001)],
    "cosine_warm_restarts_mult1": [S.cosine_restarts(0.1, period=15)],
    "linear_lr_warmup": [S.warmup(0.1, warmup_steps=20, start=0.01)],
    "linear_lr_decay": [S.linear_decay(0.1, total_steps=50, final=0.01),
                        S.polynomial(0.1, total_steps=50, power=1.0, final=0.01)],
    "polynomial_lr": [S.polynomial(0.1, total_steps=60, power=2.0)],
    "sequential_warmup_cosine": [
        S.warmup(S.cosine(0.1, total_steps=90), warmup_steps=10, start=0.001),
        S.sequence([(S.warmup(0.1, 10, start=0.001), 10), (S.cosine(0.1, 90), None)]),
        # the other warmup convention, with the cosine's clock shifted by hand
        S.warmup(S.sequence([(0.1, 10), (S.cosine(0.1, 90), None)]), 10, start=0.001, shift=False),
    ],
    "sequential_three": [
        S.sequence([(S.warmup(0.1, 5, start=0.01), 5), (S.step_decay(0.1, 10, 0.5), 35),
                    (S.exponential(0.1, 0.95), None)]),
    ],
    # cosine_lr_short: T_max=40 < 100 steps, checked on its own below
}


def _values(schedule, n=STEPS + 1):
    return np.array([schedule(k) for k in range(n)])


def test_golden_file_covers_every_case():
    cases = {key.split("/")[0] for key in GOLDEN.files if key != "meta"}
    assert cases == set(TORCH_EQUIVALENTS) | {"cosine_lr_short"}
    assert set(META["cases"]) == cases
    for key in GOLDEN.files:
        if key != "meta":
            assert GOLDEN[key].shape == (STEPS + 1,) and np.all(np.isfinite(GOLDEN[key]))


@pytest.mark.parametrize("case", sorted(TORCH_EQUIVALENTS))
def test_matches_torch_applied_lr(case):
    """The lr torch applies at step k (get_last_lr() before optimizer.step number k+1) is schedule(k)."""
    for schedule in TORCH_EQUIVALENTS[case]:
        np.testing.assert_allclose(_values(schedule), GOLDEN[f"{case}/applied"], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case}: {schedule!r}")


@pytest.mark.parametrize("case", sorted(c for c in TORCH_EQUIVALENTS if f"{c}/closed" in GOLDEN.files))
def test_matches_torch_closed_form(case):
    """torch's closed form (the paper's formula); it differs from torch's recursive form by rounding only."""
    closed, applied = GOLDEN[f"{case}/closed"], GOLDEN[f"{case}/applied"]
    np.testing.assert_allclose(applied, closed, rtol=1e-14, atol=ATOL)
    for schedule in TORCH_EQUIVALENTS[case]:
        np.testing.assert_allclose(_values(schedule), closed, rtol=RTOL, atol=ATOL, err_msg=repr(schedule))


def test_cosine_stays_at_final_where_torch_rises_again():
    """Documented difference: torch's CosineAnnealingLR is periodic past T_max; ours holds ``final``."""
    ours = _values(S.cosine(0.1, total_steps=40, final=0.001))
    torch_lr = GOLDEN["cosine_lr_short/applied"]
    np.testing.assert_allclose(ours[:41], torch_lr[:41], rtol=RTOL, atol=ATOL)
    assert np.all(ours[40:] == 0.001)
    assert torch_lr[60] > 0.05 and torch_lr[80] == pytest.approx(0.1, rel=1e-12)


# ---- hand-computed values ----------------------------------------------------------------

def test_linear_decay_with_floor_by_hand():
    s = S.linear_decay(0.1, total_steps=50, final=0.01)
    for k, want in [(0, 0.1), (10, 0.082), (25, 0.055), (49, 0.0118), (50, 0.01), (80, 0.01)]:
        assert s(k) == pytest.approx(want, rel=1e-14), k
    assert s(0) == 0.1 and s(50) == 0.01  # both ends exact


def test_linear_decay_to_zero_is_exactly_zero_on_the_last_step():
    n = 37  # a run of n steps uses k = 0 .. n-1
    s = S.linear_decay(0.3, total_steps=n - 1)
    assert s(n - 1) == 0.0 and s(n - 2) > 0.0
    assert S.linear_decay(0.3, total_steps=n)(n - 1) == pytest.approx(0.3 / n, rel=1e-14)


@pytest.mark.parametrize("decay, want", [
    # k: 0     5    10   79   80   85                  90    95                  99   100  150
    ("linear", [0.0, 0.5, 1.0, 1.0, 1.0, 0.775, 0.55, 0.325, 0.145, 0.1, 0.1]),
    ("cosine", [0.0, 0.5, 1.0, 1.0, 1.0, 1 - 0.9 * (1 - math.sqrt(0.5)) / 2, 0.55,
                1 - 0.9 * (1 + math.sqrt(0.5)) / 2, 1 - 0.9 * (1 - math.cos(0.95 * math.pi)) / 2, 0.1, 0.1]),
    ("sqrt", [0.0, 0.5, 1.0, 1.0, 1.0, 0.55, 1 - 0.9 * math.sqrt(0.5), 1 - 0.9 * math.sqrt(0.75),
              1 - 0.9 * math.sqrt(0.95), 0.1, 0.1]),
])
def test_wsd_by_hand(decay, want):
    s = S.wsd(1.0, total_steps=100, warmup_steps=10, decay_steps=20, final=0.1, decay=decay)
    ks = [0, 5, 10, 79, 80, 85, 90, 95, 99, 100, 150]
    got = [s(k) for k in ks]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_wsd_phases():
    v, T, W, D = 0.02, 200, 15, 40
    s = S.wsd(v, total_steps=T, warmup_steps=W, decay_steps=D, final=0.002, decay="cosine", start=0.001)
    vals = _values(s, T + 20)
    assert vals[0] == 0.001
    assert np.all(np.diff(vals[:W + 1]) > 0)                       # warmup rises ...
    assert np.all(vals[W:T - D + 1] == v)                         # ... the stable phase is flat, exactly v,
    assert np.all(np.diff(vals[T - D:T + 1]) < 0)                  # the decay falls ...
    assert np.all(vals[T:] == 0.002)                              # ... to exactly final, and stays
    np.testing.assert_allclose(np.diff(vals[:W + 1]), (v - 0.001) / W, rtol=1e-10)  # a straight ramp


def test_cosine_restarts_by_hand():
    s = S.cosine_restarts(1.0, period=10, mult=2, final=0.0)
    assert [k for k in range(200) if s(k) == 1.0] == [0, 10, 30, 70, 150]   # cycles of 10, 20, 40, 80
    assert s.cycle(69) == (39, 40) and s.cycle(70) == (0, 80)
    assert s(5) == pytest.approx(0.5, abs=1e-15) and s(20) == pytest.approx(0.5, abs=1e-15)
    assert s(50) == pytest.approx(0.5, abs=1e-15)
    s3 = S.cosine_restarts(1.0, period=2, mult=3)
    assert [k for k in range(100) if s3(k) == 1.0] == [0, 2, 8, 26, 80]   # cycles of 2, 6, 18, 54
    assert s3.cycle(25) == (17, 18) and s3(5) == pytest.approx(0.5, abs=1e-15)
    s1 = S.cosine_restarts(2.0, period=4, final=1.0)
    np.testing.assert_allclose(_values(s1, 9), [2, 1.5 + 0.5 * math.sqrt(0.5), 1.5, 1.5 - 0.5 * math.sqrt(0.5)] * 2
                               + [2], rtol=1e-15)
    assert s1(10**9) == 2.0  # integer bookkeeping: an exact restart far out (10**9 is a multiple of 4)


def test_step_multistep_exponential_by_hand():
    assert [S.step_decay(1.0, 3, 0.5)(k) for k in (0, 2, 3, 5, 6, 9)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    m = S.multistep(1.0, [2, 5], gamma=0.1)
    np.testing.assert_allclose([m(k) for k in (0, 1, 2, 4, 5, 100)], [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-15)
    assert S.exponential(2.0, 0.5)(3) == 0.25


def test_polynomial_by_hand():
    s = S.polynomial(1.0, total_steps=4, power=0.5, final=0.2)
    np.testing.assert_allclose(_values(s, 6), [1.0, 0.2 + 0.8 * math.sqrt(0.75), 0.2 + 0.8 * math.sqrt(0.5),
                                               0.6, 0.2, 0.2], rtol=1e-15)


# ---- properties ---------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", [
    S.cosine(0.1, 100), S.cosine(1.0, 7, final=0.3), S.linear_decay(0.5, 33, 0.1), S.polynomial(1.0, 50, 3.0),
    S.polynomial(1.0, 50, 0.3, 0.5), S.step_decay(1.0, 4, 0.9), S.exponential(1.0, 0.9),
    S.multistep(1.0, [3, 8], 0.5), S.wsd(1.0, 60, 0, 20, decay="sqrt"),
], ids=repr)
def test_decays_are_non_increasing_and_end_at_final(schedule):
    vals = _values(schedule, 160)
    assert np.all(np.diff(vals) <= 0)
    assert vals[0] == pytest.approx(schedule.value, rel=1e-15)
    if hasattr(schedule, "final"):
        assert vals[-1] == schedule.final


def test_cosine_is_symmetric_about_its_midpoint():
    s = S.cosine(1.0, 100, final=0.2)
    for k in range(101):
        assert s(k) + s(100 - k) == pytest.approx(1.2, rel=1e-14)
    assert s(50) == pytest.approx(0.6, rel=1e-14)


@pytest.mark.parametrize("inner", [S.constant(0.3), S.cosine(0.3, 50, 0.01), S.exponential(0.3, 0.9),
                                   S.wsd(0.3, 40, 5, 10)], ids=repr)
@pytest.mark.parametrize("shift", [True, False])
def test_warmup_reaches_the_inner_schedule_exactly(inner, shift):
    w = 12
    s = S.warmup(inner, w, start=0.01, shift=shift)
    target = inner(0) if shift else inner(w)
    assert s(0) == 0.01
    assert s(w) == target
    np.testing.assert_allclose(np.diff(_values(s, w + 1)), (target - 0.01) / w, rtol=1e-12)  # one straight line
    for k in range(w, w + 40):
        assert s(k) == inner(k - w if shift else k)


def test_exponential_warmup_is_geometric():
    s = S.warmup(S.constant(1.0), 10, start=1e-3, kind="exponential")
    vals = _values(s, 11)
    assert vals[0] == 1e-3 and vals[10] == 1.0
    np.testing.assert_allclose(vals[1:] / vals[:-1], 1000.0 ** 0.1, rtol=1e-12)


def test_zero_warmup_is_the_inner_schedule():
    inner = S.cosine(0.1, 30)
    assert _values(S.warmup(inner, 0)).tolist() == _values(inner).tolist()


def test_sequence_boundaries_and_last_phase_keeps_going():
    s = S.sequence([(1.0, 3), (S.exponential(1.0, 0.5), 2), (S.linear_decay(0.1, 10), 4)])
    assert [s(k) for k in range(5)] == [1.0, 1.0, 1.0, 1.0, 0.5]
    # the last phase runs on its own clock (k - 5) past its nominal 4 steps
    np.testing.assert_allclose([s(k) for k in (5, 9, 14, 15, 40)], [0.1, 0.06, 0.01, 0.0, 0.0], rtol=1e-14,
                               atol=1e-17)


def test_scale():
    inner = S.cosine(1.0, 20, 0.1)
    s = S.scale(inner, 0.5)
    assert [s(k) for k in range(25)] == [0.5 * inner(k) for k in range(25)]


# ---- a schedule as lr of an optimizer -----------------------------------------------------

def test_schedule_as_lr_matches_manual_loop_with_torch_lrs():
    """sgd with lr = schedule follows w <- w - lr_k g_k, lr_k the lr torch applies at step k (scaled by 0.01
    to keep Rosenbrock stable). Checks the indexing convention: schedule(0) is the first step's lr."""
    problem = problems.create("rosenbrock")
    oracle = problem.oracle()
    schedule = S.scale(S.warmup(S.cosine(0.1, 90), 10, start=0.001), 0.01)
    lrs = 0.01 * GOLDEN["sequential_warmup_cosine/applied"]

    opt = optim.create("sgd", lr=schedule)
    params = problem.init(0)
    state = opt.init(params)
    w = problem.init(0)["w"].copy()
    for k in range(STEPS):
        params, state = opt.step(params, state, oracle)
        _, g = oracle({"w": w})
        w = w - lrs[k] * g["w"]
        np.testing.assert_allclose(params["w"], w, rtol=1e-12, atol=1e-14, err_msg=f"step {k + 1}")
    assert state["step"] == STEPS
    assert float(problem.loss(params)) < 0.5 * float(problem.loss(problem.init(0)))  # it did move


def test_schedule_as_lr_differs_from_constant_lr():
    """The optimizer really evaluates the schedule (a constant lr at the peak gives another trajectory)."""
    problem = problems.create("rosenbrock")
    ends = []
    for lr in (S.linear_decay(1e-3, 20), 1e-3):
        opt = optim.create("sgd", lr=lr)
        params = problem.init(0)
        state = opt.init(params)
        for _ in range(20):
            params, state = opt.step(params, state, problem.oracle())
        ends.append(params["w"])
    assert np.max(np.abs(ends[0] - ends[1])) > 1e-3


# ---- the step check and the output type -----------------------------------------------------

EXAMPLES = [
    S.constant(0.1), S.step_decay(0.1, 5), S.multistep(0.1, [3, 6]), S.exponential(0.1, 0.9),
    S.linear_decay(0.1, 10), S.polynomial(0.1, 10, 2.0, 0.01), S.cosine(0.1, 10), S.cosine_restarts(0.1, 4, 2),
    S.warmup(S.cosine(0.1, 10), 3), S.warmup(0.1, 3, start=0.01, kind="exponential", shift=False),
    S.wsd(0.1, 20, 2, 5, decay="cosine"), S.sequence([(0.1, 2), (S.cosine(0.1, 5), None)]),
    S.scale(S.cosine(1.0, 10), 0.1),
]


def test_examples_cover_the_core_schedules():
    core = {"constant", "step_decay", "multistep", "exponential", "linear_decay", "polynomial", "cosine",
            "cosine_restarts", "warmup", "wsd", "sequence", "scale"}
    assert {s.name for s in EXAMPLES} == core
    assert core <= set(S.names())


@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_step_must_be_a_non_negative_int(schedule):
    for k in (0, 1, 7, 25, np.int64(3), np.int32(4)):
        assert type(schedule(k)) is float
    assert schedule(np.int64(3)) == schedule(3)
    for bad in (1.0, 2.5, "3", None, True, np.float64(2.0)):
        with pytest.raises(TypeError, match="step"):
            schedule(bad)
    with pytest.raises(ValueError, match="step must be an int >= 0, got -1"):
        schedule(-1)


@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_immutable_readable_and_rebuildable(schedule):
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.value = 1.0
    assert repr(schedule).startswith(schedule.name + "(")
    namespace = {name: getattr(S, name) for name in S.__all__}
    rebuilt = eval(repr(schedule), namespace)
    assert rebuilt == schedule and hash(rebuilt) == hash(schedule)
    spec = schedule.spec()
    assert json.loads(json.dumps(spec)) == spec
    assert S.from_spec(json.loads(json.dumps(spec))) == schedule
    assert S.create(**{**schedule.params(), "name": schedule.name}) == schedule
    assert _values(rebuilt, 30).tolist() == _values(schedule, 30).tolist()


def test_inner_numbers_become_constants_and_plain_callables_are_accepted():
    assert S.warmup(0.1, 5).schedule == S.constant(0.1)
    s = S.warmup(lambda k: 0.2 * 0.5 ** k, 4)
    assert s(2) == pytest.approx(0.1) and s(5) == pytest.approx(0.1)
    numpy_inner = S.warmup(lambda k: np.float64(0.2), 2, start=np.float64(0.0))
    assert type(numpy_inner(1)) is float and type(numpy_inner(5)) is float   # Python floats out, whatever comes in
    assert numpy_inner(5) == 0.2 and type(S.scale(numpy_inner, np.float64(0.5))(5)) is float
    with pytest.raises(TypeError, match="no spec"):
        s.spec()


def test_registry():
    assert S.create("cosine", value=0.1, total_steps=100, final=0.001) == S.cosine(0.1, 100, 0.001)
    assert S.get_class("wsd") is S.wsd
    with pytest.raises(KeyError, match="unknown schedule 'cosinus'"):
        S.create("cosinus", value=0.1)
    with pytest.raises(ValueError, match="registered twice"):
        S.register("cosine")(type("Again", (S.Schedule,), {}))


def test_register_hook_adds_a_paper_schedule_to_the_catalog(monkeypatch):
    monkeypatch.setattr(schedules_base.SCHEDULES, "_classes", dict(schedules_base.SCHEDULES._classes))
    monkeypatch.setattr(catalog, "_ENTRIES", dict(catalog._ENTRIES))
    test_paper = dict(title="A test paper on schedules", authors="Nobody", year=2099, arxiv="0000.00000",
                      family="lr-schedule")

    @S.register("half_constant_test")
    @dataclasses.dataclass(frozen=True, repr=False)
    class HalfConstant(S.Schedule):
        value: float
        paper = test_paper

        def at(self, k):
            return self.value / 2

    assert "half_constant_test" in S.names()
    assert S.create("half_constant_test", value=0.4)(3) == 0.2
    entry = [e for e in catalog.entries() if e["title"] == test_paper["title"]]
    assert len(entry) == 1
    assert entry[0]["name"] == "half_constant_test" and entry[0]["module"] == __name__
    assert entry[0]["kind"] == "implementation" and entry[0]["family"] == "lr-schedule"


def test_classic_schedules_have_no_catalog_entry():
    modules = {e["module"] for e in catalog.entries()}
    assert not any(m in modules for m in ("reference.schedules.decay", "reference.schedules.compose",
                                          "reference.schedules.wsd"))


def test_exponential_warmup_needs_a_positive_target():
    s = S.warmup(S.linear_decay(1.0, 5), 3, start=0.1, kind="exponential", shift=False)
    assert s(3) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="positive target"):
        S.warmup(S.linear_decay(1.0, 5), 5, start=0.1, kind="exponential", shift=False)(1)


# ---- argument validation ------------------------------------------------------------------

C = S.cosine(0.1, 10)
INVALID = [
    (S.constant, (-0.1,), {}, "value=-0.1"),
    (S.constant, (math.nan,), {}, "value=nan"),
    (S.constant, (math.inf,), {}, "value=inf"),
    (S.constant, ("0.1",), {}, "value must be a number"),
    (S.step_decay, (0.1, 0), {}, "step_size=0"),
    (S.step_decay, (0.1, 2.5), {}, "step_size must be an int >= 1, got 2.5"),
    (S.step_decay, (0.1, 5), {"gamma": 0.0}, r"gamma=0.0 is out of range: expected \(0, 1\]"),
    (S.step_decay, (0.1, 5), {"gamma": 1.5}, "gamma=1.5"),
    (S.multistep, (0.1, [5, 3]), {}, "milestones=.* strictly increasing"),
    (S.multistep, (0.1, [0, 3]), {}, "milestones"),
    (S.multistep, (0.1, 5), {}, "milestones must be a sequence"),
    (S.multistep, (0.1, [5]), {"gamma": -0.5}, "gamma=-0.5"),
    (S.exponential, (0.1, 1.01), {}, "gamma=1.01"),
    (S.linear_decay, (0.1, 0), {}, "total_steps=0 is out of range: expected an int >= 1"),
    (S.linear_decay, (0.1, True), {}, "total_steps must be an int"),
    (S.linear_decay, (0.1, 10), {"final": 0.2}, r"final=0.2 is out of range: expected \[0, 0.1\]"),
    (S.linear_decay, (0.1, 10), {"final": -0.01}, "final=-0.01"),
    (S.linear_decay, (-0.1, 10), {}, "value=-0.1"),
    (S.polynomial, (0.1, 10), {"power": 0.0}, "power=0.0"),
    (S.polynomial, (0.1, 10), {"final": 1.0}, "final=1.0"),
    (S.cosine, (0.1, 10.0), {}, "total_steps must be an int >= 1, got 10.0"),
    (S.cosine, (0.1, -3), {}, "total_steps=-3"),
    (S.cosine, (0.1, 10), {"final": 0.5}, "final=0.5"),
    (S.cosine_restarts, (0.1, 0), {}, "period=0"),
    (S.cosine_restarts, (0.1, 10), {"mult": 0}, "mult=0"),
    (S.cosine_restarts, (0.1, 10), {"mult": 1.5}, "mult must be an int >= 1, got 1.5"),
    (S.cosine_restarts, (0.1, 10), {"final": 1.0}, "final=1.0"),
    (S.warmup, (C, -1), {}, "warmup_steps=-1"),
    (S.warmup, (C, 5), {"kind": "cubic"}, "kind must be one of .*'cubic'"),
    (S.warmup, (C, 5), {"start": -0.1}, "start=-0.1"),
    (S.warmup, (C, 5), {"start": 0.0, "kind": "exponential"}, r"start=0.0 is out of range: expected \(0, inf\)"),
    (S.warmup, (C, 5), {"shift": "yes"}, "shift must be True or False"),
    (S.warmup, ("cosine", 5), {}, "schedule must be a schedule"),
    (S.warmup, (-0.1, 5), {}, "schedule=-0.1"),
    (S.wsd, (0.1, 10, 5, 6), {}, "warmup_steps \\+ decay_steps = 5 \\+ 6 is out of range: expected <= total_steps"),
    (S.wsd, (0.1, 10, 2, 0), {}, "decay_steps=0"),
    (S.wsd, (0.1, 10, -1, 2), {}, "warmup_steps=-1"),
    (S.wsd, (0.1, 10, 2, 2), {"decay": "exp"}, "decay must be one of .*'exp'"),
    (S.wsd, (0.1, 10, 2, 2), {"final": 0.2}, "final=0.2"),
    (S.wsd, (0.1, 10, 2, 2), {"start": 0.2}, "start=0.2"),
    (S.wsd, (0.1, 0, 0, 1), {}, "total_steps=0"),
    (S.sequence, ([],), {}, "phases must hold at least one"),
    (S.sequence, (5,), {}, "phases must be a list"),
    (S.sequence, ([(C, 0)],), {}, r"phases\[0\] n_steps=0"),
    (S.sequence, ([(C, None), (C, 5)],), {}, r"phases\[0\] n_steps must be an int >= 1, got None"),
    (S.sequence, ([(C,)],), {}, r"phases\[0\] must be a pair"),
    (S.sequence, ([(C, 3), ("x", None)],), {}, r"phases\[1\] schedule must be a schedule"),
    (S.scale, (C, -2.0), {}, "factor=-2.0"),
    (S.scale, (C, math.nan), {}, "factor=nan"),
]


@pytest.mark.parametrize("factory, args, kwargs, message", INVALID,
                         ids=[f"{f.name}-{m[:30]}" for f, _, _, m in INVALID])
def test_invalid_arguments_raise_value_error_naming_the_parameter(factory, args, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        factory(*args, **kwargs)
    assert str(info.value).startswith(factory.name + ":")


# ---- optional: regenerate the golden file with torch -------------------------------------------

@pytest.mark.peer
def test_golden_file_is_reproduced_by_torch():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("make_schedules_golden", GOLDEN_DIR / "make_schedules_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.compute()
    assert set(fresh) == set(GOLDEN.files)
    assert json.loads(str(fresh["meta"]))["cases"] == META["cases"]
    for key in GOLDEN.files:
        if key != "meta":
            np.testing.assert_allclose(fresh[key], GOLDEN[key], rtol=1e-13, atol=ATOL, err_msg=key)
