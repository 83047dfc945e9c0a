"""xtl's data layer (docs/architecture.md)."""
