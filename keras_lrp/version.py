"""The version of keras-lrp (a module of its own, so that reading it imports nothing)."""

__version__ = "0.5.0"
