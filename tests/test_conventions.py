"""The argument conventions hold over the whole public API (introspection), and old call forms
still work for one release with a FutureWarning naming the new form."""

from __future__ import annotations

import importlib
import inspect
import warnings

import numpy as np
import pandas as pd
import pytest

import nextchannel
from nextchannel.conventions import TABLE_NAMES, TIME_NAME, accepts_old_form

# Documented exceptions (README, "API conventions"): scikit-learn style estimators take X first
# and their other arrays positionally; the array-level estimators and diagnostics take aligned
# arrays like scikit-learn's metrics; the two-sample drift measures take (reference, current).
EXEMPT_MODULES = {"nextchannel.models", "nextchannel.diagnostics", "nextchannel.drift", "nextchannel.plots",
                  "nextchannel.explain"}
EXEMPT_CLASSES = {"ChannelModel", "OfferModel", "ValueModel", "RewardModel", "ModelSet", "FeatureSpec",
                  "ContextSpec"}
EXEMPT = {"nextchannel.evaluate.dm", "nextchannel.evaluate.ips", "nextchannel.evaluate.snips",
          "nextchannel.evaluate.dr", "nextchannel.evaluate.policy_value_true"}
OLD_NAMES = {"as_of", "at", "as_of_ts", "time", "timestamp"}


# The rule covers the package's public names and every public name of these modules.
MODULES = ("nextchannel.evaluate", "nextchannel.jobs", "nextchannel.dask_backend", "nextchannel.web.logs",
           "nextchannel.features", "nextchannel.profile", "nextchannel.demand")


def public_callables():
    """Every public function (by ``__all__``) and every public method of the public classes."""
    seen = set()
    found = [(getattr(nextchannel, n), n) for n in nextchannel._EXPORTS]
    for modname in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:  # an optional extra that is not installed
            continue
        found += [(getattr(mod, n, None), n) for n in getattr(mod, "__all__", ())]
    for obj, name in found:
        mod = importlib.import_module(getattr(obj, "__module__", "nextchannel"))
        if True:
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                key = f"{mod.__name__}.{name}"
                if key not in seen:
                    seen.add(key)
                    yield key, mod.__name__, None, obj
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for m, f in vars(obj).items():
                    f = f.__func__ if isinstance(f, (classmethod, staticmethod)) else f
                    if m.startswith("_") or not inspect.isfunction(f):
                        continue
                    key = f"{mod.__name__}.{name}.{m}"
                    if key not in seen:
                        seen.add(key)
                        yield key, mod.__name__, name, f


def params_of(func, method):
    ps = list(inspect.signature(func).parameters.values())
    if method and ps and ps[0].name in ("self", "cls"):
        ps = ps[1:]
    return ps


def is_table(p) -> bool:
    ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
    return p.name in TABLE_NAMES or p.name == "at" or "DataFrame" in str(ann)


ALL = list(public_callables())


def test_the_walk_finds_the_api():
    names = {k for k, *_ in ALL}
    for key in ("nextchannel.training.train", "nextchannel.scorer.Scorer.decide_many",
                "nextchannel.features.features_many", "nextchannel.profile.profiles_many",
                "nextchannel.evaluate.compare", "nextchannel.evaluate.estimate_policy_value",
                "nextchannel.jobs.retrain", "nextchannel.web.logs.read_logs"):
        assert key in names
    try:
        importlib.import_module("nextchannel.dask_backend")
    except ImportError:
        pass
    else:
        assert "nextchannel.dask_backend.features_many" in names
    assert len(ALL) > 100


def violations():
    out = []
    for key, modname, cls, func in ALL:
        ps = params_of(func, cls is not None)
        for p in ps:
            if p.name in OLD_NAMES:
                out.append(f"{key}: parameter {p.name!r} (the time of a decision is {TIME_NAME!r}, "
                           "decision points are 'decisions')")
        if modname in EXEMPT_MODULES or cls in EXEMPT_CLASSES or key in EXEMPT:
            continue
        if not ps:
            continue
        subject_is_table = is_table(ps[0])
        for p in ps[1:]:
            if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD):
                continue
            if p.kind == p.VAR_POSITIONAL:
                out.append(f"{key}: *{p.name} after the subject")
            elif subject_is_table:
                out.append(f"{key}: {p.name!r} is positional after the table {ps[0].name!r} (make it keyword-only)")
            elif is_table(p):
                out.append(f"{key}: table {p.name!r} is positional but not the subject (make it keyword-only)")
    return out


def test_every_public_signature_follows_the_rule():
    assert violations() == []


def test_the_rule_catches_an_old_signature():
    def features_many(events: pd.DataFrame, at: pd.DataFrame, customers: pd.DataFrame | None = None):
        """old"""

    global ALL
    saved = ALL
    ALL = saved + [("old.features_many", "old", None, features_many)]
    try:
        found = violations()
    finally:
        ALL = saved
    assert "old.features_many: parameter 'at' (the time of a decision is 'now', decision points are 'decisions')" in found
    assert "old.features_many: 'at' is positional after the table 'events' (make it keyword-only)" in found


# ---- the old forms still work, with a FutureWarning spelling the new form ------------------------------

EV = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [0.0, 5.0, 1.0], "type": ["page_view", "form_error", "click"],
                   "page": ["/checkout", None, None], "page_type": ["checkout", None, None],
                   "field": [None, "zip", None]})
AT = pd.DataFrame({"session_id": ["a", "b"], "ts": [9.0, 2.0]})
LOG = pd.DataFrame({"customer_id": ["c1", "c1"], "ts": [0.0, 86400.0], "channel": ["chat", "phone"],
                    "resolved": [True, False], "satisfaction": [5.0, float("nan")], "handling_s": [60.0, 300.0]})
PAT = pd.DataFrame({"customer_id": ["c1", None], "ts": [2 * 86400.0, 0.0]})
LOGS = pd.DataFrame({"action": ["none", "chat"] * 50, "propensity": 0.5, "reward": [0.0, 1.0] * 50})
NEVER = np.array([[1.0, 0.0]] * 100)
ALWAYS = np.array([[0.0, 1.0]] * 100)


@pytest.mark.parametrize("old, new, message", [
    (lambda: nextchannel.features_many(EV, AT), lambda: nextchannel.features_many(AT, events=EV),
     "features_many(events, at) is the old form; call features_many(decisions, events=...)"),
    (lambda: nextchannel.features_many(EV, at=AT), lambda: nextchannel.features_many(AT, events=EV),
     "call features_many(decisions, events=...)"),
    (lambda: nextchannel.profiles_many(PAT, LOG), lambda: nextchannel.profiles_many(PAT, contacts=LOG),
     "profiles_many(at, contacts) is the old form; call profiles_many(decisions, contacts=...)"),
    (lambda: nextchannel.profile_one(None, as_of=5.0), lambda: nextchannel.profile_one(None, now=5.0),
     "call profile_one(customer, now=...)"),
    (lambda: nextchannel.history_of(LOG, "c1"), lambda: nextchannel.history_of("c1", contacts=LOG),
     "call history_of(customer_id, contacts=...)"),
    (lambda: nextchannel.compare(NEVER, ALWAYS, LOGS, actions=["none", "chat"], estimator="snips").difference,
     lambda: nextchannel.compare(LOGS, champion=NEVER, challenger=ALWAYS, actions=["none", "chat"],
                                 estimator="snips").difference,
     "call compare(logs, champion=..., challenger=..., actions=..., estimator=...)"),
    (lambda: nextchannel.estimate_policy_value(LOGS, ALWAYS, ["none", "chat"], ci=None),
     lambda: nextchannel.estimate_policy_value(LOGS, target=ALWAYS, actions=["none", "chat"], ci=None),
     "call estimate_policy_value(logs, target=..., actions=..., ci=...)"),
])
def test_old_forms_warn_and_give_the_same_answer(old, new, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = new()  # the new form does not warn
    with pytest.warns(FutureWarning, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        got = old()
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    else:
        assert got == expected


def test_old_positional_train_and_decide_many_warn():
    sc = nextchannel.Scorer.load()
    new = sc.decide_many(AT.assign(customer_id=None), events=EV)
    with pytest.warns(FutureWarning, match=r"decide_many\(decisions, events=\.\.\.\)"):
        old = sc.decide_many(AT.assign(customer_id=None), EV)
    pd.testing.assert_frame_equal(old, new)
    with pytest.warns(FutureWarning, match=r"call train\(decisions, events=\.\.\.\)"), \
            pytest.raises(nextchannel.ValidationError):
        nextchannel.train(pd.DataFrame({"x": [1]}), EV)  # old form mapped, then validated as usual


def test_the_decorator_refuses_what_it_cannot_map():
    @accepts_old_form(old=("events", "at"), renamed={"at": "decisions"})
    def f(decisions, *, events=None):
        return decisions, events

    with pytest.raises(TypeError, match="at most 2 positional arguments in its old form, got 3"):
        f(1, 2, 3)
    with pytest.raises(TypeError, match=r"got both 'at' \(old name\) and 'decisions'"):
        f(events=1, at=2, decisions=3)
    with pytest.raises(TypeError, match=r"multiple values for \['at'\]"):
        f(1, 2, at=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1) == (1, None) and f(decisions=1, events=2) == (1, 2)
