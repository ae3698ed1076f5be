"""The steward store and how the nightly run honours it."""
