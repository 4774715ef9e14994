"""User-facing errors.

A :class:`SagestackError` is a problem with the user's input or environment (a missing file,
a bad column, an unknown model). Its message is one line that says what is wrong, where, and
how to fix it; the CLI prints it without a traceback and exits non-zero. Anything else that
escapes is a bug in sagestack and keeps its traceback.
"""


class SagestackError(Exception):
    """An error the user can fix; ``str(error)`` is the one-line message shown to them."""


class DataError(SagestackError):
    """The input data is missing, unreadable or fails validation."""


class ConfigError(SagestackError):
    """A configuration value or file is invalid."""


class RegistryError(SagestackError):
    """A model or version asked for is not in the model registry."""
