"""Errors worded for the user. `UserError` is the base of every mistake a user can make, in data_prep and in
mer_search alike (mer_search.core.errors re-exports it): the CLI prints one as one line and exits 1."""


class UserError(Exception):
    """Bad input, a missing file, a setting that cannot work: the message says what and what to do."""


class PrepError(UserError):
    """A problem with the user's input or output, worded as one line that says what to do."""
