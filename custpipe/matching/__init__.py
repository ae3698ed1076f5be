"""Matching and consolidation: linking rules, clustering, stable golden IDs, survivorship."""
