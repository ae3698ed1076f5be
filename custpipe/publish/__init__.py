"""Publishing the reconciled customer table to the ERP: a delta, in one transaction."""
