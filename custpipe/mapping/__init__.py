"""Declarative per-source mapping rules applied to raw rows (field maps, crosswalks, transforms)."""
