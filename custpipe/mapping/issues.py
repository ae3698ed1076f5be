"""What mapping reports: a `MappingIssue` per problem, `MappingError` when it cannot go on."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


class MappingError(ValueError):
    """The mapping cannot be applied (strict mode, or a broken expression)."""


@dataclass(frozen=True)
class MappingIssue:
    """A problem found while mapping: which rule, which source column, how many rows."""

    source: str
    field: str
    column: str
    problem: str
    rows: int
    examples: tuple[str, ...] = ()  # only non-personal values (codes), never customer data
    rule: str = ""  # the quarantine rule of the rows concerned ("" = not row-level)

    def __str__(self) -> str:
        ex = f" (values: {', '.join(self.examples)})" if self.examples else ""
        return (
            f"{self.source}.{self.field} <- {self.column}: {self.problem} in {self.rows} row(s){ex}"
        )


def flag(errors: pd.Series, mask: pd.Series, rule: str) -> pd.Series:
    """Append `rule` to the `;`-separated error list of the rows in `mask`."""
    return errors.where(~mask, errors.map(lambda e: f"{e};{rule}" if isinstance(e, str) else rule))
