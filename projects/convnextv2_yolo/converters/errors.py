"""Errors of the checkpoint converters."""


class ConversionError(ValueError):
    """The source checkpoint cannot be converted (names the key/file)."""


class ArchitectureError(ConversionError):
    """The checkpoint's model is not the architecture of our config: an
    unsupported model, or module classes / settings that differ."""
