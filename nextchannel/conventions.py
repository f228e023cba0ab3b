"""The argument conventions of the public API, and the one decorator that keeps old call forms alive.

The rule (README, "API conventions"):

1. **The subject comes first.** A function that works on a table takes that table first: the
   decision points it decides on, featurises, profiles or trains on (``decisions``), or the logged
   decisions with outcomes it evaluates on (``logs``).
2. **Every other table is keyword-only**, under one name everywhere: ``events``, ``customers``,
   ``contacts``, ``features``, ``outcomes``, ``logs``, ``truth`` (and ``X`` for a model's feature
   matrix). When the subject is a table, the options are keyword-only too.
3. **One name for the time of a decision**: ``now`` (seconds since the epoch) in per-request calls,
   the ``ts`` column in frames. ``as_of`` and ``at`` are gone.

Documented exceptions: scikit-learn style estimator methods (``fit(X, ...)``, ``predict(X)``),
the array-level estimators (``dm``, ``ips``, ``snips``, ``dr``, the uplift and calibration
diagnostics, which take aligned arrays like scikit-learn's metrics) and the two-sample drift
measures (``reference, current``).

:func:`accepts_old_form` lets callers of the previous release keep working for one release: an old
positional call, or an old argument name, is mapped onto the new signature with a
``FutureWarning`` that spells the new form.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any, Callable, Mapping, Sequence, TypeVar

__all__ = ["TABLE_NAMES", "TIME_NAME", "accepts_old_form"]

#: The names a table argument may have, each meaning the same thing in every function.
TABLE_NAMES: tuple[str, ...] = ("decisions", "logs", "events", "customers", "contacts", "features",
                                "outcomes", "truth", "X")
#: The one name of the time of a decision.
TIME_NAME = "now"

F = TypeVar("F", bound=Callable[..., Any])


def accepts_old_form(old: Sequence[str], renamed: Mapping[str, str] | None = None,
                     method: bool = False) -> Callable[[F], F]:
    """Map calls of the previous release's signature onto the new one, with a ``FutureWarning``.

    Parameters
    ----------
    old : sequence of str
        The previous positional order of the parameters (without ``self``), under their old names.
    renamed : mapping, optional
        Old parameter name -> new name (``{"at": "decisions"}``).
    method : bool, default False
        The function is a method (its first argument is ``self`` and is passed through).

    A call is in the old form when it passes more positional arguments than the new signature
    takes, passes a renamed argument under its old name, or passes one positional argument
    together with the new subject under its own name (the positional one then was the old first
    argument). Anything else goes straight through, at the cost of one ``len`` and one dict lookup.

    Examples
    --------
    >>> import warnings
    >>> @accepts_old_form(old=("events", "at"), renamed={"at": "decisions"})
    ... def feats(decisions, *, events=None):
    ...     return decisions, events
    >>> feats("D", events="E")
    ('D', 'E')
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     feats("E", "D")
    ('D', 'E')
    >>> print(w[0].message)  # doctest: +ELLIPSIS
    feats(events, at) is the old form; call feats(decisions, events=...) ...
    """
    renamed = dict(renamed or {})
    old = tuple(old)

    def wrap(func: F) -> F:
        params = list(inspect.signature(func).parameters.values())
        if method:
            params = params[1:]
        n_positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        subject = params[0].name if params else ""
        skip = 1 if method else 0

        def new_form(passed: Sequence[str]) -> str:
            rest = [n for n in passed if n != subject]
            return f"{func.__name__}({', '.join([subject] + [f'{n}=...' for n in rest])})"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            pos = args[skip:]
            old_pos = len(pos) > n_positional or (pos and subject in kwargs and subject not in old[:1])
            old_names = renamed and not renamed.keys().isdisjoint(kwargs)
            if not (old_pos or old_names):
                return func(*args, **kwargs)
            # The caller uses the old signature: its positional arguments are in the old order.
            if len(pos) > len(old):
                raise TypeError(f"{func.__name__}() takes at most {len(old)} positional arguments in "
                                f"its old form, got {len(pos)}; call {new_form(old)}")
            bound = dict(zip(old, pos))
            clash = bound.keys() & kwargs.keys()
            if clash:
                raise TypeError(f"{func.__name__}() got multiple values for {sorted(clash)}")
            bound.update(kwargs)
            used = list(old[:len(pos)]) + [n for n in renamed if n in kwargs]
            for before, after in renamed.items():
                if before in bound:
                    if after in bound:
                        raise TypeError(f"{func.__name__}() got both {before!r} (old name) and {after!r}")
                    bound[after] = bound.pop(before)
            shown = [renamed.get(n, n) for n in bound]
            more = ", ..." if len(used) < len(bound) else ""
            warnings.warn(f"{func.__name__}({', '.join(used)}{more}) is the old form; call {new_form(shown)} "
                          "instead (the subject first, every other argument by keyword); the old form "
                          "goes in the next release", FutureWarning, stacklevel=2)
            return func(*args[:skip], **bound)

        wrapper.__wrapped_old_form__ = old  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return wrap
