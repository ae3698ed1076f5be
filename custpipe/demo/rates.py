"""Configurable error-injection rates for the demo generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ErrorRates:
    """Probabilities of each injected defect (per source record unless noted)."""

    typo: float = 0.05
    phone_format: float = 0.5
    full_width: float = 0.05
    spacing_case: float = 0.1
    traditional_chinese: float = 0.15
    legal_form: float = 0.2
    missing_field: float = 0.05
    invalid_email: float = 0.02
    invalid_tax_id: float = 0.02
    stale_address: float = 0.03
    wrong_code: float = 0.03
    unknown_code: float = 0.01
    duplicate: float = 0.05
    deleted: float = 0.005
    # order-level rates
    status_mismatch: float = 0.03
    amount_mismatch: float = 0.03
    duplicate_customer_order: float = 0.05
    missing_in_erp: float = 0.01
    missing_in_sales: float = 0.01
    line_total_mismatch: float = 0.01  # an ERP order whose lines do not add up to its amount

    def to_dict(self) -> dict[str, float]:
        """Return the rates as a plain dict."""
        return asdict(self)
