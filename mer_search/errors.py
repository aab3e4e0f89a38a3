"""One base for the mistakes a user can make: the CLI prints them as one line and exits 1.

Anything else that escapes a command is a bug in mer-search: the CLI shows its traceback (with -v) or
says how to see it.
"""


class UserError(Exception):
    """Bad input, a missing file, a setting that cannot work: the message says what and what to do."""


class ConfigError(UserError, ValueError):
    """A training config or model setting that cannot run; the message names the key."""
