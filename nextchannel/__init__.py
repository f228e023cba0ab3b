"""nextchannel: decide whether to offer help to a website visitor now, and on which channel.

The package namespace is the map of the public API; each name lives in the module of its concept.
"""

from nextchannel.errors import BundleError, ConfigError, NextChannelError, ValidationError
from nextchannel.schema import Channel, ChannelCatalogue, validate_event, validate_events

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "NextChannelError",
    "ValidationError",
    "ConfigError",
    "BundleError",
    "Channel",
    "ChannelCatalogue",
    "validate_event",
    "validate_events",
]
