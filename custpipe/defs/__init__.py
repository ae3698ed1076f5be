"""The Dagster layer: wires the functional core into assets, checks, jobs and schedules."""
