"""xtl's model layer (docs/architecture.md)."""
