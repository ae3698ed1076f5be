"""The stewards' workbench: review matches, search golden records, work the quarantine and
read the rules, in a browser, behind a login (`custpipe steward`).

Decisions, unmerges and the audit log live in the steward store (`store.py`, SQLite), which
the nightly run imports; the web pages only ever read the warehouse.
"""
