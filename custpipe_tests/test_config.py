import shutil

import pytest

from custpipe.config import ConfigError, load_config
from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe_tests.conftest import edit


def test_demo_config_loads():
    cfg = load_config(DEFAULT_CONFIG_DIR)
    assert sorted(cfg.sources) == ["crm", "erp", "sales", "service"]
    assert cfg.sources["erp"].customers.fields["segment"].crosswalk == {
        "01": "A",
        "02": "B",
        "03": "C",
    }
    assert cfg.sources["erp"].orders is not None and cfg.sources["crm"].orders is None


def test_typo_in_a_key_names_file_and_key(config_dir):
    edit(config_dir / "sources" / "crm.yaml", "crosswalk: {Gold", "crosswalks: {Gold")
    with pytest.raises(ConfigError) as err:
        load_config(config_dir)
    msg = str(err.value)
    assert (
        "crm.yaml" in msg and "customers.fields.segment.crosswalks" in msg and "unknown key" in msg
    )


def test_unknown_canonical_field_is_listed(config_dir):
    edit(config_dir / "sources" / "erp.yaml", "    street: STRAS", "    streat: STRAS")
    with pytest.raises(
        ConfigError, match=r"(?s)erp.yaml.*unknown canonical field\(s\) \['streat'\]"
    ):
        load_config(config_dir)


def test_rule_needs_exactly_one_input(config_dir):
    edit(config_dir / "sources" / "erp.yaml", "    city: ORT01", "    city: {sep: '-'}")
    with pytest.raises(ConfigError, match=r"customers.fields.city: give exactly one of"):
        load_config(config_dir)


def test_reference_to_missing_source(config_dir):
    edit(config_dir / "pipeline.yaml", "system_of_record: erp", "system_of_record: sap")
    with pytest.raises(
        ConfigError,
        match=r"(?s)pipeline.yaml.*reconcile.system_of_record: 'sap' is not a configured source",
    ):
        load_config(config_dir)


def test_invalid_yaml_names_the_file(config_dir):
    (config_dir / "sources" / "sales.yaml").write_text("customers: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sales.yaml: not valid YAML"):
        load_config(config_dir)


def test_adding_a_source_is_adding_a_file(config_dir):
    shutil.copy(config_dir / "sources" / "service.yaml", config_dir / "sources" / "helpdesk.yaml")
    assert "helpdesk" in load_config(config_dir).sources


def test_unknown_survivorship_rule_names_the_attribute(config_dir):
    edit(config_dir / "pipeline.yaml", "segment: [frequent, trust]", "segment: [popular, trust]")
    with pytest.raises(ConfigError, match=r"survivorship.*segment.*unknown rule"):
        load_config(config_dir)


def test_matching_thresholds_must_be_ordered(config_dir):
    edit(config_dir / "pipeline.yaml", "review: 0.80", "review: 0.995")
    with pytest.raises(ConfigError, match="review"):
        load_config(config_dir)


def test_custpipe_check_names_a_malformed_suite_and_a_broken_model(tmp_path, monkeypatch, capsys):
    from custpipe.cli import main
    from custpipe.settings import DEFAULT_EXPECTATIONS_DIR

    monkeypatch.setenv("CUSTPIPE_DATA", str(tmp_path / "data"))
    assert main(["check"]) == 0
    assert "suite file(s)" in capsys.readouterr().out

    suites = tmp_path / "expectations"
    shutil.copytree(DEFAULT_EXPECTATIONS_DIR, suites)
    (suites / "orders.json").write_text('{"name": "orders", "expectations": [\n', encoding="utf-8")
    monkeypatch.setenv("CUSTPIPE_EXPECTATIONS", str(suites))
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "orders.json" in err and "line 2" in err

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    (config / "match_model.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(config))
    monkeypatch.setenv("CUSTPIPE_EXPECTATIONS", str(DEFAULT_EXPECTATIONS_DIR))
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "match_model.json" in err and "train-model" in err


@pytest.mark.parametrize(
    ("key", "old", "bad"),
    [
        ("schedule_cron", '"0 2 * * *"', '"0 2 * * 1"'),  # weekly: the run is per business date
        ("schedule_cron", '"0 2 * * *"', '"61 2 * * *"'),
        ("schedule_cron", '"0 2 * * *"', '"@daily"'),
        ("timezone", "timezone: UTC", "timezone: Mars/Olympus"),
        ("partitions_start", '"2026-01-01"', '"2026-02-30"'),
        ("partitions_start", '"2026-01-01"', '"01.01.2026"'),
    ],
)
def test_schedule_timezone_and_start_date_are_validated_with_the_config(config_dir, key, old, bad):
    edit(config_dir / "pipeline.yaml", old, bad)
    with pytest.raises(ConfigError) as err:
        load_config(config_dir)
    message = str(err.value)
    assert "pipeline.yaml" in message and f"  - {key}: " in message, message


def test_the_schedule_time_comes_from_the_validated_cron(config_dir):
    assert load_config(config_dir).schedule_time == (2, 0)
    edit(config_dir / "pipeline.yaml", '"0 2 * * *"', '"30 23 * * *"')
    assert load_config(config_dir).schedule_time == (23, 30)
