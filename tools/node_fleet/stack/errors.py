"""The embedded stack's own error."""


class StackError(RuntimeError):
    """The embedded stack could not start or was used wrongly."""
