"""The one exception type users see as a single line (no traceback), and the check that raises it for params.yaml."""


class DevagenError(Exception):
    """A problem the user can fix; the message names the file/param and the fix."""


def check(ok: bool, key: str, why: str) -> None:
    """Raise DevagenError "params.yaml: key: why" unless ok."""
    if not ok:
        raise DevagenError(f"params.yaml: {key}: {why}")
