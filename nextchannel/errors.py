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
