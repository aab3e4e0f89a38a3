"""One base for the mistakes a user can make: the CLI prints them as one line and exits 1.

Anything else that escapes a command is a bug in mer-search: the CLI shows its traceback (with -v) or
says how to see it.
"""


from data_prep.errors import UserError

__all__ = ["UserError", "ConfigError"]


class ConfigError(UserError, ValueError):
    """A training config or model setting that cannot run; the message names the key."""
