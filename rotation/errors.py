"""The rotation package's root exception."""


class RotationError(Exception):
    """A rotation failure; the message names the service and the lane involved."""
