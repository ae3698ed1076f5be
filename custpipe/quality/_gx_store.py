"""GX store subclasses: PII-scrubbing validation results, read-only expectation suites.

Referenced by class name from the generated ``great_expectations.yml`` (see ``_gx_context``);
importing this module imports great_expectations, so only GX itself should import it.
"""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from great_expectations.data_context.store.expectations_store import (  # noqa: E402
    ExpectationsStore as _GxExpectationsStore,
)
from great_expectations.data_context.store.validation_results_store import (  # noqa: E402
    ValidationResultsStore as _GxValidationResultsStore,
)

from custpipe.quality.pii import scrub_suite_result  # noqa: E402


class ValidationResultsStore(_GxValidationResultsStore):
    """PII-safe ValidationResultsStore: never writes row values or row ids (unless opted in).

    It must keep GX's class name: GX 1.24 replaces a configured store whose ``class_name`` is
    not one of its default names by an ephemeral in-memory store (``DataContextConfig``'s
    store defaulting), so the subclass is selected through ``module_name`` only.

    Scrubbing happens in ``serialize``, i.e. on the way to the backend, so nothing unscrubbed
    ever touches disk; the in-memory result returned to the caller is left untouched.
    Set ``include_values = True`` on the instance to keep the values (debugging only).
    """

    include_values: bool = False

    def serialize(self, value):  # type: ignore[override]
        """Serialise ``value`` to JSON, dropping customer values unless ``include_values``."""
        if self.include_values or self.cloud_mode:
            return super().serialize(value)
        return self._expectationSuiteValidationResultSchema.dumps(
            scrub_suite_result(value.to_json_dict()), indent=2, sort_keys=True
        )


class ReadOnlySuiteStoreError(PermissionError):
    """GX tried to write a reviewed suite file (suites are edited in git, not by GX)."""


class ExpectationsStore(_GxExpectationsStore):
    """Read-only ExpectationsStore over the repository's ``expectations/`` folder.

    GX rewrites suite files as a side effect of e.g. ``checkpoints.add_or_update`` (which
    cascades to ``suites.add_or_update``); this store refuses every write so the reviewed
    JSON is never reformatted or altered. Same class name as GX's for the reason above.
    """

    def _refuse(self, *args, **kwargs):
        raise ReadOnlySuiteStoreError(
            "expectation suites are read-only for GX here; edit the JSON files in git"
        )

    set = _add = _update = _add_or_update = remove_key = _refuse  # type: ignore[assignment]
