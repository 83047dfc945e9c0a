"""xtl's grid layer (docs/architecture.md)."""
