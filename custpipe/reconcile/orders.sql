-- Findings, one row per (order, kind). Parameters: $sor (system of record), $tol (amount tolerance).
WITH o AS (
    SELECT s.*, x.golden_id
    FROM staging.orders s
    LEFT JOIN mdm.customer_xref x
      ON x.source_system = s.source_system AND x.source_id = s.customer_ref
),
dups AS (
    SELECT source_system, order_number, count(*) AS n FROM o
    WHERE order_number IS NOT NULL GROUP BY ALL HAVING count(*) > 1
),
sor AS (SELECT * FROM o WHERE source_system = $sor AND order_number IS NOT NULL QUALIFY row_number() OVER (PARTITION BY order_number ORDER BY source_id) = 1),
oth AS (SELECT * FROM o WHERE source_system <> $sor AND order_number IS NOT NULL QUALIFY row_number() OVER (PARTITION BY source_system, order_number ORDER BY source_id) = 1),
other_systems AS (SELECT DISTINCT source_system FROM oth),
golden_in AS (SELECT DISTINCT golden_id, source_system FROM mdm.customer_xref)
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
SELECT t.order_number, 'missing_in_' || $sor, t.source_system, $sor, NULL, NULL, t.golden_id,
       'create order ' || t.order_number || ' in ' || $sor || ' or cancel it in ' || t.source_system
FROM oth t WHERE NOT EXISTS (SELECT 1 FROM sor s WHERE s.order_number = t.order_number)
UNION ALL
SELECT s.order_number, 'missing_in_' || g.source_system, s.source_system, g.source_system, NULL, NULL, s.golden_id,
       'send order ' || s.order_number || ' to ' || g.source_system
FROM sor s JOIN golden_in g ON g.golden_id = s.golden_id
JOIN other_systems os ON os.source_system = g.source_system
WHERE NOT EXISTS (SELECT 1 FROM oth t WHERE t.order_number = s.order_number AND t.source_system = g.source_system)
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
FROM o LEFT JOIN (SELECT DISTINCT source_system, source_id FROM staging.customers) st
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
SELECT source_system || ':' || coalesce(source_id, '?'), 'order_number_missing', source_system,
       NULL, NULL, NULL, golden_id,
       'order ' || coalesce(source_id, '?') || ' of ' || source_system
           || ' has no order number: fill it in the source system'
FROM o WHERE order_number IS NULL
UNION ALL
SELECT coalesce(order_number, source_system || ':' || coalesce(source_id, '?')), 'unmapped_code',
       source_system, NULL, mapping_errors, NULL, golden_id,
       'add the code to the crosswalk of ' || source_system || ' (' || mapping_errors || ')'
FROM o WHERE mapping_errors IS NOT NULL
