class AuroraError(Exception):
    """A user-facing problem (bad recipe, missing asset, unreadable input).

    The CLI prints the message as one line and exits non-zero, without a traceback.
    """
