"""Single source of the library version (also written into every artifact)."""

__version__ = "0.1.0"
