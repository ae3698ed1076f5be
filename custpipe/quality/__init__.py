"""Data quality: GX suites, incremental validation, quarantine, scorecard.

Every great_expectations import of custpipe is in this package, so what GX imports without
custpipe's suites needing it (scipy.stats) is deferred here, before any of them
(custpipe.quality._lazy_imports).
"""

from custpipe.quality._lazy_imports import defer_unused

defer_unused()
