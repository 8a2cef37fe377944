"""Exceptions shared by every layer."""


class UserError(Exception):
    """A problem the user can fix (bad path, unknown version, empty range).

    The CLI prints it as one line and exits with status 2, never a traceback.
    """
