"""The one exception type users see: its message is printed as a single line by the CLI."""


class TdwError(Exception):
    """A user-facing error: bad input, a missing checkpoint, a refused statement."""
