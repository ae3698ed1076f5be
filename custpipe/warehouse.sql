-- The warehouse contract (see README): schemas and the tables other tools read.
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS quality;
CREATE SCHEMA IF NOT EXISTS mdm;
CREATE SCHEMA IF NOT EXISTS recon;

CREATE TABLE IF NOT EXISTS staging.customers (
    source_system VARCHAR NOT NULL, source_id VARCHAR, party_type VARCHAR, name VARCHAR,
    name_key VARCHAR, given_name VARCHAR, family_name VARCHAR, birth_date TIMESTAMP,
    national_id VARCHAR, tax_id VARCHAR, tax_id_valid BOOLEAN, email VARCHAR, email_valid BOOLEAN,
    phone VARCHAR, phone_valid BOOLEAN, street VARCHAR, city VARCHAR, region VARCHAR,
    postal_code VARCHAR, postal_code_valid BOOLEAN, country VARCHAR, segment VARCHAR,
    segment_raw VARCHAR, status VARCHAR, is_deleted BOOLEAN, created_at TIMESTAMP,
    source_updated_at TIMESTAMP, source_values VARCHAR, mapping_errors VARCHAR,
    record_hash VARCHAR, raw_hash BIGINT, business_date DATE, landing_path VARCHAR, run_id VARCHAR,
    staged_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS staging.orders (
    source_system VARCHAR NOT NULL, source_id VARCHAR, order_number VARCHAR, customer_ref VARCHAR,
    order_date TIMESTAMP, amount DOUBLE, currency VARCHAR, status VARCHAR, source_values VARCHAR,
    mapping_errors VARCHAR, raw_hash BIGINT, business_date DATE, landing_path VARCHAR, run_id VARCHAR,
    staged_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS staging.order_lines (
    source_system VARCHAR NOT NULL, source_id VARCHAR, order_number VARCHAR, line_number VARCHAR,
    product VARCHAR, quantity DOUBLE, line_amount DOUBLE, source_values VARCHAR,
    mapping_errors VARCHAR, raw_hash BIGINT, business_date DATE, landing_path VARCHAR,
    run_id VARCHAR, staged_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS staging.landing_log (
    source_system VARCHAR NOT NULL, dataset VARCHAR NOT NULL, landing_path VARCHAR NOT NULL,
    mode VARCHAR, rows BIGINT, run_id VARCHAR, staged_at TIMESTAMP, mapping VARCHAR
);

CREATE TABLE IF NOT EXISTS staging.mapping_issues (
    run_id VARCHAR, source_system VARCHAR, dataset VARCHAR, field VARCHAR, source_column VARCHAR,
    problem VARCHAR, rows BIGINT, examples VARCHAR, found_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS quality.validation_runs (
    run_id VARCHAR, source_system VARCHAR, suite VARCHAR, rows BIGINT, quarantined BIGINT,
    success BOOLEAN, validated_at TIMESTAMP,
    volume_ok BOOLEAN  -- the volume check's own outcome: a failed night is no baseline
);

-- a genuine drop of a source's volume accepted by a person (`custpipe accept-volume`): the
-- accepted validation becomes the volume check's baseline
CREATE TABLE IF NOT EXISTS quality.volume_acceptances (
    source_system VARCHAR NOT NULL, run_id VARCHAR NOT NULL, rows BIGINT,
    accepted_by VARCHAR NOT NULL, reason VARCHAR NOT NULL, accepted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS quality.quarantine (
    source_system VARCHAR NOT NULL, source_id VARCHAR, rule VARCHAR NOT NULL, severity VARCHAR,
    description VARCHAR, run_id VARCHAR NOT NULL, quarantined_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS quality.scorecard (
    run_id VARCHAR NOT NULL, run_at TIMESTAMP, source_system VARCHAR NOT NULL, rule VARCHAR NOT NULL,
    severity VARCHAR, evaluated BIGINT, failed BIGINT, pass_rate DOUBLE
);

CREATE TABLE IF NOT EXISTS mdm.golden_customers (
    golden_id VARCHAR PRIMARY KEY, party_type VARCHAR, name VARCHAR, name_key VARCHAR,
    given_name VARCHAR, family_name VARCHAR, tax_id VARCHAR, email VARCHAR, phone VARCHAR,
    street VARCHAR, city VARCHAR, region VARCHAR, postal_code VARCHAR, country VARCHAR,
    segment VARCHAR, status VARCHAR, erp_customer_number VARCHAR, member_count BIGINT,
    sources VARCHAR, attribute_sources VARCHAR, first_seen_run VARCHAR, run_id VARCHAR,
    updated_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS mdm.customer_xref (
    source_system VARCHAR NOT NULL, source_id VARCHAR NOT NULL, golden_id VARCHAR NOT NULL,
    match_rule VARCHAR, run_id VARCHAR, PRIMARY KEY (source_system, source_id)
);

CREATE TABLE IF NOT EXISTS mdm.match_review (
    left_source_system VARCHAR, left_source_id VARCHAR, right_source_system VARCHAR,
    right_source_id VARCHAR, score DOUBLE, explanation VARCHAR, run_id VARCHAR
);

CREATE TABLE IF NOT EXISTS mdm.steward_decisions (
    left_source_system VARCHAR NOT NULL, left_source_id VARCHAR NOT NULL,
    right_source_system VARCHAR NOT NULL, right_source_id VARCHAR NOT NULL,
    decision VARCHAR NOT NULL, decided_by VARCHAR NOT NULL, decided_at TIMESTAMP NOT NULL,
    reason VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS mdm.golden_id_history (
    run_id VARCHAR, golden_id VARCHAR, event VARCHAR, related_golden_id VARCHAR,
    members BIGINT, recorded_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS recon.order_discrepancies (
    order_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, source_system VARCHAR, other_system VARCHAR,
    source_value VARCHAR, other_value VARCHAR, golden_id VARCHAR, suggested_fix VARCHAR,
    run_id VARCHAR
);
