-- Findings, one row per (order, kind). Parameters: $sor (system of record), $tol (amount
-- tolerance), $erp_source, $window (days). Orders pair up across systems by order number;
-- an order whose number has no partner pairs, as a fallback, with an unpaired order of the
-- other system for the same golden customer, within $window days and $tol of the amount
-- (nearest date first, each order used once): those are findings of kind
-- order_number_mismatch rather than two orders missing in each other's system. Where a
-- source has order lines, an order whose lines do not add up to its amount (within $tol) is
-- a line_total_mismatch; lines whose order header is absent are lines_without_order.
-- $sor NULL (no system of record): `sor` and `oth` are empty (nothing equals NULL), so no
-- order is compared across systems and only each system's own findings remain; $erp_source
-- NULL (no ERP customer numbers): no duplicate_customer finding.
--
-- Scope: $all true makes every finding (a full recompute). $all false makes only the findings
-- whose order_id is in the relation `reconcile_scope` (order_id), exactly as the full
-- recompute would, from the staged rows they depend on: the orders of those ids (by number,
-- or for a numberless order by source_system:source_id), every numbered order of the golden
-- customers of those orders (the fallback pairs within a golden customer), and every order
-- sharing a number with one of these (pairing and the first row per number go by number).
-- Findings of other ids made along the way (from incomplete inputs) are left out at the end.
WITH in_scope AS (SELECT DISTINCT order_id FROM reconcile_scope WHERE NOT $all),
scope_goldens AS (
    SELECT DISTINCT x.golden_id FROM staging.orders s
    JOIN mdm.customer_xref x ON x.source_system = s.source_system AND x.source_id = s.customer_ref
    WHERE NOT $all
      AND coalesce(s.order_number, s.source_system || ':' || coalesce(s.source_id, '?'))
          IN (SELECT order_id FROM in_scope)
),
scope_numbers AS (
    SELECT order_id AS order_number FROM in_scope
    UNION
    SELECT s.order_number FROM staging.orders s
    JOIN mdm.customer_xref x ON x.source_system = s.source_system AND x.source_id = s.customer_ref
    WHERE NOT $all AND s.order_number IS NOT NULL
      AND x.golden_id IN (SELECT golden_id FROM scope_goldens)
),
o AS (
    SELECT s.*, x.golden_id
    FROM staging.orders s
    LEFT JOIN mdm.customer_xref x
      ON x.source_system = s.source_system AND x.source_id = s.customer_ref
    WHERE $all OR s.order_number IN (SELECT order_number FROM scope_numbers)
       OR (s.order_number IS NULL
           AND s.source_system || ':' || coalesce(s.source_id, '?') IN (SELECT order_id FROM in_scope))
),
dups AS (
    SELECT source_system, order_number, count(*) AS n FROM o
    WHERE order_number IS NOT NULL GROUP BY ALL HAVING count(*) > 1
),
sor AS (SELECT * FROM o WHERE source_system = $sor AND order_number IS NOT NULL QUALIFY row_number() OVER (PARTITION BY order_number ORDER BY source_id) = 1),
oth AS (SELECT * FROM o WHERE source_system <> $sor AND order_number IS NOT NULL QUALIFY row_number() OVER (PARTITION BY source_system, order_number ORDER BY source_id) = 1),
other_systems AS (  -- the systems with numbered orders besides $sor (all of them, whatever the scope)
    SELECT DISTINCT source_system FROM staging.orders WHERE source_system <> $sor AND order_number IS NOT NULL
),
unpaired_oth AS (SELECT t.* FROM oth t WHERE NOT EXISTS (SELECT 1 FROM sor s WHERE s.order_number = t.order_number)),
unpaired_sor AS (  -- per other system, system-of-record orders without a partner there
    SELECT s.*, os.source_system AS other_system FROM sor s CROSS JOIN other_systems os
    WHERE NOT EXISTS (SELECT 1 FROM oth t WHERE t.order_number = s.order_number AND t.source_system = os.source_system)
),
fallback_candidates AS (
    SELECT t.source_system AS other_system, t.order_number AS other_number, s.order_number AS sor_number,
           s.golden_id, abs(date_diff('day', s.order_date, t.order_date)) AS days
    FROM unpaired_oth t JOIN unpaired_sor s
      ON s.other_system = t.source_system AND s.golden_id = t.golden_id
     AND s.currency = t.currency AND abs(s.amount - t.amount) <= $tol
     AND abs(date_diff('day', s.order_date, t.order_date)) <= $window
),
fallback AS (  -- nearest date first; an order pairs at most once on either side
    SELECT * FROM fallback_candidates
    QUALIFY row_number() OVER (PARTITION BY other_system, other_number ORDER BY days, sor_number) = 1
        AND row_number() OVER (PARTITION BY other_system, sor_number ORDER BY days, other_number) = 1
),
golden_in AS (
    SELECT DISTINCT golden_id, source_system FROM mdm.customer_xref
    WHERE $all OR golden_id IN (SELECT golden_id FROM o)
),
line_totals AS (  -- per system and order number: the sum of its lines (where a source has them)
    SELECT source_system, order_number, sum(line_amount) AS total, count(*) AS lines,
           count(*) FILTER (WHERE line_amount IS NULL) AS unpriced
    FROM staging.order_lines
    WHERE order_number IS NOT NULL AND ($all OR order_number IN (SELECT order_number FROM scope_numbers))
    GROUP BY ALL
),
staged_refs AS (  -- the staged customers that orders without a golden customer refer to
    SELECT DISTINCT c.source_system, c.source_id FROM staging.customers c
    SEMI JOIN (SELECT source_system, customer_ref FROM o WHERE golden_id IS NULL) u
      ON u.source_system = c.source_system AND u.customer_ref = c.source_id
),
headers AS (
    SELECT * FROM o WHERE order_number IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY source_system, order_number ORDER BY source_id) = 1
),
findings AS (
SELECT order_number AS order_id, 'duplicate_order' AS kind, source_system, NULL AS other_system,
       n::VARCHAR AS source_value, NULL AS other_value, NULL AS golden_id,
       'keep one order ' || order_number || ' in ' || source_system || ', cancel the other ' || (n - 1)::VARCHAR AS suggested_fix
FROM dups
UNION ALL
SELECT s.order_number, 'status_mismatch', s.source_system, t.source_system, s.status, t.status, s.golden_id,
       'align status of order ' || s.order_number || ' (' || s.source_system || ': ' || coalesce(s.status, 'null') || ', ' || t.source_system || ': ' || coalesce(t.status, 'null') || ')'
FROM sor s JOIN oth t USING (order_number)
WHERE s.status IS DISTINCT FROM t.status
UNION ALL
SELECT s.order_number, 'amount_mismatch', s.source_system, t.source_system,
       printf('%.2f %s', s.amount, s.currency), printf('%.2f %s', t.amount, t.currency), s.golden_id,
       'check the amount of order ' || s.order_number || ' in ' || t.source_system || ' against ' || s.source_system
FROM sor s JOIN oth t USING (order_number)
WHERE s.currency IS DISTINCT FROM t.currency OR abs(s.amount - t.amount) > $tol
   OR (s.amount IS NULL) <> (t.amount IS NULL)
UNION ALL
SELECT f.sor_number, 'order_number_mismatch', $sor, f.other_system, f.sor_number, f.other_number, f.golden_id,
       'same customer, amount and date: order ' || f.sor_number || ' of ' || $sor || ' is order '
           || f.other_number || ' in ' || f.other_system || ': align the order numbers'
FROM fallback f
UNION ALL
SELECT t.order_number, 'missing_in_' || $sor, t.source_system, $sor, NULL, NULL, t.golden_id,
       'create order ' || t.order_number || ' in ' || $sor || ' or cancel it in ' || t.source_system
FROM unpaired_oth t
WHERE NOT EXISTS (SELECT 1 FROM fallback f WHERE f.other_system = t.source_system AND f.other_number = t.order_number)
UNION ALL
SELECT s.order_number, 'missing_in_' || g.source_system, s.source_system, g.source_system, NULL, NULL, s.golden_id,
       'send order ' || s.order_number || ' to ' || g.source_system
FROM sor s JOIN golden_in g ON g.golden_id = s.golden_id
JOIN other_systems os ON os.source_system = g.source_system
WHERE NOT EXISTS (SELECT 1 FROM oth t WHERE t.order_number = s.order_number AND t.source_system = g.source_system)
  AND NOT EXISTS (SELECT 1 FROM fallback f WHERE f.other_system = g.source_system AND f.sor_number = s.order_number)
UNION ALL
SELECT coalesce(o.order_number, o.source_system || ':' || coalesce(o.source_id, '?')),
       CASE WHEN st.source_id IS NULL THEN 'unknown_customer' ELSE 'customer_quarantined' END,
       o.source_system, NULL, o.customer_ref, NULL, NULL,
       CASE WHEN st.source_id IS NULL
            THEN 'customer ' || coalesce(o.customer_ref, 'null') || ' does not exist in ' || o.source_system
                 || ': fix the order''s customer reference'
            ELSE 'customer ' || o.customer_ref || ' of ' || o.source_system
                 || ' is quarantined: fix it (see quality.quarantine), the order follows next run'
       END
FROM o LEFT JOIN staged_refs st
  ON st.source_system = o.source_system AND st.source_id = o.customer_ref
WHERE o.golden_id IS NULL
UNION ALL
SELECT s.order_number, 'duplicate_customer', s.source_system, NULL, s.customer_ref, g.erp_customer_number, s.golden_id,
       're-point order ' || s.order_number || ' from duplicate customer ' || s.customer_ref
           || ' to customer ' || g.erp_customer_number
FROM sor s JOIN mdm.golden_customers g ON g.golden_id = s.golden_id
WHERE s.source_system = $erp_source AND g.erp_customer_number IS NOT NULL
  AND s.customer_ref <> g.erp_customer_number
UNION ALL
SELECT h.order_number, 'line_total_mismatch', h.source_system, NULL,
       coalesce(printf('%.2f', h.amount), 'no amount') || coalesce(' ' || h.currency, ''),
       coalesce(printf('%.2f', l.total), 'no amount') || ' (' || l.lines::VARCHAR || ' lines'
           || CASE WHEN l.unpriced > 0 THEN ', ' || l.unpriced::VARCHAR || ' without amount' ELSE '' END || ')',
       h.golden_id,
       CASE WHEN l.unpriced > 0
            THEN l.unpriced::VARCHAR || ' line(s) of order ' || h.order_number || ' in ' || h.source_system
                 || ' have no amount: fill them in, then check that the lines add up to the order amount'
            ELSE 'the lines of order ' || h.order_number || ' in ' || h.source_system || ' add up to '
                 || printf('%.2f', l.total) || ', the order says ' || coalesce(printf('%.2f', h.amount), 'nothing')
                 || ': correct the line amounts or the order amount'
       END
FROM headers h JOIN line_totals l USING (source_system, order_number)
WHERE l.unpriced > 0 OR h.amount IS NULL OR abs(h.amount - l.total) > $tol
UNION ALL
SELECT l.order_number, 'lines_without_order', l.source_system, NULL, l.lines::VARCHAR, NULL, NULL,
       'order ' || l.order_number || ' has ' || l.lines::VARCHAR || ' line(s) in ' || l.source_system
           || ' but no order header: restore the order or delete its lines'
FROM line_totals l
WHERE NOT EXISTS (SELECT 1 FROM headers h WHERE h.source_system = l.source_system AND h.order_number = l.order_number)
UNION ALL
SELECT source_system || ':' || coalesce(source_id, '?'), 'order_number_missing', source_system,
       NULL, NULL, NULL, golden_id,
       'order ' || coalesce(source_id, '?') || ' of ' || source_system
           || ' has no order number: fill it in the source system'
FROM o WHERE order_number IS NULL
UNION ALL
SELECT coalesce(order_number, source_system || ':' || coalesce(source_id, '?')), 'unmapped_code',
       source_system, NULL, mapping_errors, NULL, golden_id,
       'add the code to the crosswalk of ' || source_system || ' (' || mapping_errors || ')'
FROM o WHERE mapping_errors LIKE '%crosswalk_covered:%'
UNION ALL
SELECT coalesce(order_number, source_system || ':' || coalesce(source_id, '?')), 'invalid_value',
       source_system, NULL, mapping_errors, NULL, golden_id,
       'correct the order in ' || source_system || ' (' || mapping_errors || '): an amount must be a '
           || 'number under the mapping''s number_format, a currency an ISO 4217 code, an id unique, '
           || 'a required field filled'
FROM o WHERE regexp_replace(mapping_errors, 'crosswalk_covered:[^;]*;?', '', 'g') <> ''
)
SELECT * FROM findings WHERE $all OR order_id IN (SELECT order_id FROM in_scope)
