"""xtl: cross-lingual transfer kit."""
__version__ = "0.1.0"
