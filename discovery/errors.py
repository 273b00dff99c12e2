"""Exceptions raised by discovery.

Every error a user can cause is a `DiscoveryError`; those about a bad value or a bad
file are also `ValueError`s, so callers that already catch `ValueError` keep working.
Messages name the argument or the file, what was expected and what was received.
"""


class DiscoveryError(Exception):
    """Base class of every error discovery raises on purpose."""


class ParameterError(DiscoveryError, ValueError):
    """A setting or argument has an invalid value."""


class AudioError(DiscoveryError, ValueError):
    """An audio file is missing, empty, unreadable or holds invalid samples."""


class ModelError(DiscoveryError, ValueError):
    """A model bundle is missing, incomplete, or does not match the data."""


class AudioWarning(UserWarning):
    """An audio file was read, but not all that its header promises (e.g. it is truncated)."""
