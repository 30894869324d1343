"""HTTP routes: a few lines each, calling services."""
