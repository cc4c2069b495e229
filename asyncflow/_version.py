"""The version of asyncflow (its own module, so every layer may read it)."""

__version__ = "0.1.0"
