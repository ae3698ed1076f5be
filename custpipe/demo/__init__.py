"""Deterministic generator of dirty demo source systems (ERP, CRM, sales, service) with
ground truth. Entry point: :func:`custpipe.demo.generate.generate_demo`."""
