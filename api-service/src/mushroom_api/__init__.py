"""Mushroom ID API: identifies mushrooms from photos, safety first."""

__version__ = "0.1.0"
