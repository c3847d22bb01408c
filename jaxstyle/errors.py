"""The one exception type for errors a user can cause."""


class JaxstyleError(Exception):
    """A problem the user can fix; the message says what to do.

    The CLI prints the message on one line and exits non-zero, without a traceback.
    """
