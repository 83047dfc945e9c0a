"""xtl's evaluation layer (docs/architecture.md)."""
