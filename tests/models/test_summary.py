"""The parameter table and `python -m asymfusion.models.summary`."""

from __future__ import annotations

import pytest

from asymfusion.models.summary import PAPER_METHODS, main, parameter_table

from .conftest import tiny_config


def test_parameter_table_has_one_row_per_config_and_per_modality_columns() -> None:
    table = parameter_table({"a": tiny_config("asymfusion"), "s": tiny_config("separate"), "e": tiny_config("early")})
    assert list(table["name"]) == ["a", "s", "e"]
    assert {"method", "backbone", "params (M)", "shared (M)", "rgb (M)", "depth (M)"} <= set(table.columns)
    rows = table.set_index("name")
    assert rows.loc["e", "rgb (M)"] == 0 and rows.loc["a", "rgb (M)"] > 0
    assert rows.loc["s", "shared (M)"] + rows.loc["s", "rgb (M)"] + rows.loc["s", "depth (M)"] == \
        pytest.approx(rows.loc["s", "params (M)"], abs=0.02)


def test_summary_command_prints_the_paper_table_as_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    main()
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(PAPER_METHODS)
    rows = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert "| 118.20 |" in rows["asymfusion"] and "| 118.10 |" in rows["single"] and "| 160.60 |" in rows["separate"]
