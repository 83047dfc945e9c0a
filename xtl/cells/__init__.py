"""xtl's cells layer (docs/architecture.md)."""
