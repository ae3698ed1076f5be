"""GX store subclass that scrubs customer values before a validation result is persisted.

Referenced by class name from the generated ``great_expectations.yml`` (see ``_gx_context``);
importing this module imports great_expectations, so only GX itself should import it.
"""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

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
