"""Every step of a run decides on one configuration, even when `config/` is edited meanwhile."""

import re
import shutil

import pytest

from custpipe.config import ConfigError, load_config, run_config_copy
from custpipe.settings import DEFAULT_CONFIG_DIR


@pytest.fixture
def config(tmp_path):
    folder = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder)
    return folder


def _set_retire_share(config, value: str) -> None:
    path = config / "pipeline.yaml"
    text = path.read_text(encoding="utf-8")
    assert "max_retire_share" not in text
    path.write_text(
        text.replace(
            "  table: ZCUST_INBOUND", f"  table: ZCUST_INBOUND\n  max_retire_share: {value}"
        ),
        encoding="utf-8",
    )


def test_a_run_keeps_reading_the_configuration_it_started_with(config, tmp_path):
    data = tmp_path / "data"
    first = run_config_copy(config, data, "run-1")
    assert first == data / "runs" / "run-1" / "config"
    _set_retire_share(config, "0.5")  # edited during the night
    again = run_config_copy(config, data, "run-1")  # a later step of the same run
    assert again == first
    assert load_config(again).publish.max_retire_share == 0.05
    assert load_config(run_config_copy(config, data, "run-2")).publish.max_retire_share == 0.5


def test_a_broken_configuration_names_the_file_the_user_edits_and_copies_nothing(config, tmp_path):
    data = tmp_path / "data"
    (config / "pipeline.yaml").write_text("publish: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(config / "pipeline.yaml"))):
        run_config_copy(config, data, "run-1")
    assert not (data / "runs" / "run-1" / "config").exists()


def test_a_run_id_cannot_leave_the_runs_folder(config, tmp_path):
    with pytest.raises(ValueError, match="run id"):
        run_config_copy(config, tmp_path, "../../etc")


def test_the_nightly_run_decided_on_its_own_copy(demo_run):
    deployment, _, first = demo_run
    copy = deployment.settings.data_dir / "runs" / first.run_id / "config"
    assert (copy / "pipeline.yaml").read_text() == (
        deployment.settings.config_dir / "pipeline.yaml"
    ).read_text()
    assert sorted(p.name for p in (copy / "sources").iterdir()) == sorted(
        p.name for p in (deployment.settings.config_dir / "sources").iterdir()
    )
