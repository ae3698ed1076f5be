-- Golden record attribute by attribute (see survivorship.py): each attribute takes the first
-- non-null value by its configured rules, ties broken by the record's standing preference
-- (source trust, active before deleted, most recently updated), and records which source
-- record supplied it.
WITH ranked AS (
    SELECT m.*, l.label, t.trust,
           row_number() OVER (PARTITION BY l.label ORDER BY t.trust, m.is_deleted,
                              m.source_updated_at DESC NULLS LAST, m.source_system, m.source_id) AS pref,
           {completeness} AS completeness{frequencies}
    FROM {nodes} m JOIN {labels} l USING (node) JOIN {trust} t USING (source_system)
)
SELECT
    label,
    {attributes},
    json_object({attribute_sources})::VARCHAR AS attribute_sources,
    CASE WHEN bool_and(is_deleted) THEN 'inactive' ELSE 'active' END AS status,
    min(source_id) FILTER (WHERE source_system = $erp_source AND NOT is_deleted) AS erp_customer_number,
    count(*) AS member_count,
    string_agg(DISTINCT source_system, ',' ORDER BY source_system) AS sources
FROM ranked
GROUP BY label
