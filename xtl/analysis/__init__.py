"""xtl's analysis layer (docs/architecture.md)."""
