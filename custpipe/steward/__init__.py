"""The stewards' workbench: review matches, search golden records, work the quarantine and
read the rules, in a browser, behind a login (`custpipe steward`)."""
