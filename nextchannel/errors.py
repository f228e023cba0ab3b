"""The library's exceptions, in one place.

Every error nextchannel raises on purpose is a subclass of :class:`NextChannelError`
and of the built-in it refines (``ValueError`` or ``TypeError``), so callers may catch
either. Messages name the argument, what was expected and what was received.
"""

from __future__ import annotations

__all__ = [
    "NextChannelError",
    "ValidationError",
    "ConfigError",
    "BundleError",
    "NotFittedError",
    "excerpt",
    "NextChannelWarning",
    "ConstantModelWarning",
    "PersonalisationNotBetterWarning",
    "PolicyError",
    "DriftWarning",
]


class NextChannelError(Exception):
    """Base class of every error raised by nextchannel."""


class ValidationError(NextChannelError, ValueError):
    """Input data (events, contacts, signals, arrays) does not meet the schema.

    Examples
    --------
    >>> from nextchannel.errors import ValidationError
    >>> issubclass(ValidationError, ValueError)
    True
    """


class ConfigError(NextChannelError, ValueError):
    """A configuration object (simulator, channels, policy) holds an invalid value."""


class BundleError(NextChannelError, ValueError):
    """A model bundle is missing, corrupt, tampered with or does not match this library."""


class NotFittedError(NextChannelError, AttributeError):
    """An estimator was used before ``fit``."""


def excerpt(value: object, limit: int = 60) -> str:
    """A short, escaped, never-raising description of ``value`` for an error message or a log record.

    Messages of the web path quote what they received, but a received value may be a 1 MB string,
    an int of 5,000 digits, a list nested 1,000 deep or an object whose ``__repr__`` raises: this
    quotes strings (escaped, cut to ``limit`` characters), plain numbers, ``None`` and booleans,
    and describes anything else by its type and size only — it never calls a user object's methods.

    Examples
    --------
    >>> excerpt("x" * 1000, limit=5)
    "'xxxxx'... (1000 chars)"
    >>> excerpt(10**5000)
    '<int of 16610 bits>'
    >>> excerpt([[1]] * 3)
    '<list of 3 items>'
    >>> excerpt(3.5), excerpt(None), excerpt(True)
    ('3.5', 'None', 'True')
    """
    try:
        t = type(value)
        if value is None or t is bool or t is float:
            return repr(value)
        if t is int:
            return repr(value) if value.bit_length() <= 64 else f"<int of {value.bit_length()} bits>"  # type: ignore[union-attr]
        if t is str:
            s: str = value  # type: ignore[assignment]
            return repr(s) if len(s) <= limit else f"{s[:limit]!r}... ({len(s)} chars)"
        if t in (bytes, bytearray):
            return f"<{t.__name__} of {len(value)} bytes>"  # type: ignore[arg-type]
        if t in (list, tuple, dict, set, frozenset):
            return f"<{t.__name__} of {len(value)} items>"  # type: ignore[arg-type]
        module = getattr(t, "__module__", "")
        if module == "numpy" and hasattr(value, "shape") and getattr(value, "shape") == ():
            return repr(value.item())  # type: ignore[attr-defined]
        if module == "numpy" and hasattr(value, "shape"):
            return f"<numpy array of shape {tuple(getattr(value, 'shape'))}>"
        return f"<{t.__name__}>"
    except Exception:  # a hostile type; describe nothing rather than fail
        return "<unprintable value>"


class NextChannelWarning(UserWarning):
    """Base class of every warning nextchannel issues on purpose."""


class ConstantModelWarning(NextChannelWarning):
    """A model, or a feature it was given, cannot vary: it would give every row the same answer.

    Examples
    --------
    >>> issubclass(ConstantModelWarning, UserWarning)
    True
    """


class PersonalisationNotBetterWarning(NextChannelWarning):
    """On held-out logs the learned policy was not better than the best single (constant) action.

    :func:`nextchannel.train` then, by default, ships a bundle that decides with that constant
    action (``TrainConfig(guard=False)`` keeps the learned policy).

    Examples
    --------
    >>> issubclass(PersonalisationNotBetterWarning, NextChannelWarning)
    True
    """


class PolicyError(NextChannelError, RuntimeError):
    """A policy run by the simulator failed at a decision point (the message names the session and point)."""


class DriftWarning(NextChannelWarning):
    """The recent logs differ from the training window by more than the configured threshold.

    Raised through :func:`warnings.warn` by :func:`nextchannel.drift.drift` (a warning, not an
    error: a drifted world is a reason to look, and to retrain, not to stop).

    Examples
    --------
    >>> from nextchannel.errors import DriftWarning
    >>> issubclass(DriftWarning, UserWarning)
    True
    """
