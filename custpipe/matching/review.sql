-- Uncertain pairs for the steward: records in different clusters, in the same country, whose
-- name keys are similar (Jaro-Winkler) but that no strong identifier linked or told apart.
-- Candidates are blocked on (party type, country, first 3 characters of the name key).
WITH c AS (
    SELECT n.*, l.label, left(n.name_key, 3) AS block FROM nodes n JOIN labels l USING (node)
    WHERE n.name_key IS NOT NULL AND n.country IS NOT NULL
),
blocks AS (  -- very common prefixes carry no evidence and would explode the pair count
    SELECT party_type, country, block FROM c GROUP BY ALL HAVING count(*) BETWEEN 2 AND $max_block
),
pairs AS (
    SELECT a.source_system AS left_source_system, a.source_id AS left_source_id,
           b.source_system AS right_source_system, b.source_id AS right_source_id,
           jaro_winkler_similarity(a.name_key, b.name_key) AS name_similarity,
           {comparisons}
    FROM c a
    JOIN blocks k USING (party_type, country, block)
    JOIN c b ON b.party_type = a.party_type AND b.country = a.country AND b.block = a.block
            AND (a.source_system, a.source_id) < (b.source_system, b.source_id)
            AND a.label <> b.label
    WHERE NOT coalesce(a.tax_id_valid AND b.tax_id_valid AND a.tax_id <> b.tax_id, FALSE)
      AND jaro_winkler_similarity(a.name_key, b.name_key) >= $min_name_similarity
      AND NOT EXISTS (SELECT 1 FROM decided d  -- a steward already decided this pair
                      WHERE least(d.a, d.b) = least(a.node, b.node)
                        AND greatest(d.a, d.b) = greatest(a.node, b.node))
),
scored AS (
    SELECT *, 0.5 * name_similarity + 0.5 * ({agreement}) AS score FROM pairs
)
SELECT left_source_system, left_source_id, right_source_system, right_source_id,
       round(score, 4) AS score,
       json_object('name_similarity', round(name_similarity, 3), {explanation})::VARCHAR AS explanation
FROM scored WHERE score >= $min_score
ORDER BY score DESC, left_source_system, left_source_id, right_source_system, right_source_id
