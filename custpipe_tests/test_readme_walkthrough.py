"""The README's "Adding a source" walk-through works as written."""

import re
import shutil
from datetime import date
from pathlib import Path

import openpyxl

from custpipe.config import load_config
from custpipe.mapping.preview import preview, profile
from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR, Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_source_file() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Adding a source") :]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_dealers_example_maps_an_excel_export(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    (config / "sources" / "dealers.yaml").write_text(readme_source_file(), encoding="utf-8")
    settings = Settings(config, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    source = load_config(config).sources["dealers"]

    folder = settings.sources_dir / "dealers"
    folder.mkdir(parents=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Kunden"
    sheet.append(
        [
            "Kundennr",
            "Firma1",
            "Firma2",
            "Ansprechpartner",
            "Strasse",
            "Hausnr",
            "PLZ",
            "Ort",
            "Telefon",
            "E-Mail",
            "USt-IdNr",
            "Kategorie",
            "Geaendert",
        ]
    )
    sheet.append(
        [
            "D-1",
            "Autohaus Müller",
            "G.m.b.H.",
            "Müller, Hans",
            "Hauptstr.",
            "5",
            "1067",
            "Dresden",
            "0351/1234567",
            "Info@Autohaus-Mueller.DE",
            "DE 136695976",
            "Premium",
            "01.11.2026",
        ]
    )
    sheet.append(
        [
            "D-2",
            "Kfz Schmidt",
            None,
            None,
            "Ring",
            "1",
            "80331",
            "München",
            "089 123456",
            "not-an-email",
            "DE123",
            "Gold",
            "02.11.2026",
        ]
    )
    book.save(folder / "kunden_20261127.xlsx")

    staged, issues, notes = preview(source, "customers", settings, date(2026, 11, 27))
    staged = staged.set_index("source_id")
    d1 = staged.loc["D-1"]
    assert d1["name"] == "Autohaus Müller GmbH"
    assert (d1["family_name"], d1["given_name"]) == ("Müller", "Hans")
    assert d1["street"] == "Hauptstr. 5" and d1["postal_code"] == "01067"
    assert d1["phone"] == "+493511234567" and d1["email"] == "info@autohaus-mueller.de"
    assert d1["tax_id"] == "DE136695976" and bool(d1["tax_id_valid"])
    assert d1["segment"] == "A" and d1["country"] == "DE"
    assert d1["mapping_errors"] is None
    d2 = staged.loc["D-2"]
    assert d2["mapping_errors"] == "crosswalk_covered:segment"
    assert not d2["email_valid"] and not d2["tax_id_valid"]
    assert [(i.field, i.rows, i.examples) for i in issues] == [("segment", 1, ("Gold",))]
    assert notes == []
    filled = profile(staged.reset_index()).set_index("column")["filled"]
    assert filled["given_name"] == 1 and filled["name"] == 2
