"""xtl's core layer (docs/architecture.md)."""
