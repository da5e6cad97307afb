"""The one exception type that the CLI turns into a clean message and exit code 2."""


class PadisError(Exception):
    """Bad input or an impossible request: the message says what and how to fix it."""
