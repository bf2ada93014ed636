"""The version of membermkt (single source for packaging)."""

__version__ = "0.1.0.dev0"
