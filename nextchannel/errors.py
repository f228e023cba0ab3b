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


class DriftWarning(UserWarning):
    """The recent logs differ from the training window by more than the configured threshold.

    Raised through :func:`warnings.warn` by :func:`nextchannel.drift.drift` (a warning, not an
    error: a drifted world is a reason to look, and to retrain, not to stop).

    Examples
    --------
    >>> from nextchannel.errors import DriftWarning
    >>> issubclass(DriftWarning, UserWarning)
    True
    """
