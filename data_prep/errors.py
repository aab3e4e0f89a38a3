from mer_search.errors import UserError


class PrepError(UserError):
    """A problem with the user's input or output, worded as one line that says what to do.

    The CLI prints it without a traceback and exits non-zero.
    """
