"""The one exception type users see as a single line (no traceback)."""


class DevagenError(Exception):
    """A problem the user can fix; the message names the file/param and the fix."""
