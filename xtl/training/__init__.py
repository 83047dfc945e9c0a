"""xtl's training layer (docs/architecture.md)."""
