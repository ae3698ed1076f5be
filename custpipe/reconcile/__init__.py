"""Orders and transactions reconciled across systems against the golden customers."""
