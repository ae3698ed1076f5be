"""The staged suites' length rule takes its columns and lengths from the table catalogue.

A ``expect_row_values_to_fit_published_columns`` expectation may leave out ``max_lengths``
(each column's published length, from :func:`custpipe.catalogue.published_text_bounds`) and
``column_list`` (every staged column that reaches a published free-text column), so a new
published field is bounded without a suite edit. An explicit ``max_lengths`` may be stricter
than the catalogue, never wider: the publish would fail on a value that passed it.

No great_expectations import here: :mod:`custpipe.quality.gx_runner` completes the suite dict
it reads, the expectation class completes the kwargs GX builds it from, both with
:func:`complete_kwargs`.
"""

from __future__ import annotations

from typing import Any

from custpipe import catalogue as _catalogue

EXPECTATION_TYPE = "expect_row_values_to_fit_published_columns"


def bounds(catalogue: _catalogue.Catalogue | None = None) -> dict[str, int]:
    """Staged column -> its published length (the catalogue in use: ``catalogue.CATALOGUE``)."""
    return _catalogue.published_text_bounds(catalogue or _catalogue.CATALOGUE)


def complete_kwargs(
    kwargs: dict[str, Any], catalogue: _catalogue.Catalogue | None = None
) -> dict[str, Any]:
    """``kwargs`` with ``column_list`` and ``max_lengths`` filled in from the catalogue.

    Raise ValueError when ``max_lengths`` is given without ``column_list``, does not hold one
    length per column, names no length for a column the catalogue does not bound, or is wider
    than a column's published length (the message names the column and both lengths).
    """
    known = bounds(catalogue)
    columns = kwargs.get("column_list")
    lengths = kwargs.get("max_lengths")
    if columns is None:
        if lengths is not None:
            raise ValueError(
                "max_lengths without column_list: give column_list too (one length per "
                "column), or leave both out (every published text column, the catalogue's "
                "lengths)"
            )
        columns = list(known)
    columns = list(columns)
    if lengths is None:
        unbounded = [c for c in columns if c not in known]
        if unbounded:
            raise ValueError(
                f"column_list names {', '.join(map(str, unbounded))}, which reach(es) no "
                f"published text column (those are: {', '.join(known)}): give max_lengths "
                "(one length per column) or drop the column"
            )
        lengths = [known[c] for c in columns]
    lengths = list(lengths)
    if len(lengths) != len(columns):
        raise ValueError(
            f"max_lengths has {len(lengths)} lengths for {len(columns)} columns of column_list: "
            "give one length per column, or leave max_lengths out (the catalogue's lengths)"
        )
    for column, length in zip(columns, lengths, strict=True):
        published = known.get(column)
        if published is not None and isinstance(length, int) and length > published:
            raise ValueError(
                f"column {column}: max_lengths allows {length} characters, but its published "
                f"column holds only {published} (custpipe/catalogue.py) and the publish would "
                f"fail on a longer value; give at most {published} or leave max_lengths out"
            )
    return {**kwargs, "column_list": columns, "max_lengths": lengths}
