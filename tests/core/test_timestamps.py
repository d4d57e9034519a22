"""Times shown to people: to the minute, always with their zone, the same rule everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import run_cli, write_image

from labeldesk.core.timestamps import format_time


def test_a_stored_time_reads_in_utc_and_says_so() -> None:
    assert format_time("2026-12-01T18:40:59.999999Z") == "2026-12-01 18:40 UTC"
    # Other spellings of the same instant read the same: an offset is converted, not dropped.
    assert format_time("2026-12-01T19:40:59+01:00") == "2026-12-01 18:40 UTC"
    assert format_time("2026-12-01T18:40:00") == "2026-12-01 18:40 UTC"  # no offset: UTC
    assert format_time(None) == format_time("") == ""
    with pytest.raises(ValueError, match="zone"):
        format_time("2026-12-01T18:40:00Z", zone="mars")  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset to change the zone")
def test_local_time_carries_its_offset() -> None:
    code = (
        "from labeldesk.core.timestamps import format_time\n"
        "print(format_time('2026-12-01T18:40:00.5Z', zone='local'))\n"
        "print(format_time('2026-07-01T18:40:00.5Z', zone='local'))"
    )
    env = {**os.environ, "TZ": "Europe/Berlin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split("\n")
    assert out[:2] == ["2026-12-01 19:40 +01:00", "2026-07-01 20:40 +02:00"]


def test_cli_tables_and_the_report_name_the_zone(tmp_path, capsys, monkeypatch) -> None:
    # A local zone far from UTC: the CLI used to show local time without saying so.
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    if hasattr(time, "tzset"):
        time.tzset()
    try:
        root = tmp_path / "proj"
        assert run_cli(capsys, "init", str(root))[0] == 0
        write_image(tmp_path / "src" / "a.png")
        assert run_cli(capsys, "-p", str(root), "add", str(tmp_path / "src"))[0] == 0
        _, out, _ = run_cli(capsys, "-p", str(root), "log", "--json")
        created = json.loads(out)[0]["created"]
        shown = f"{created[:10]} {created[11:16]} UTC"
        _, out, _ = run_cli(capsys, "-p", str(root), "log")
        assert shown in out
        _, out, _ = run_cli(capsys, "-p", str(root), "show", "main")
        assert f"created   {shown}" in out
        report = tmp_path / "report.html"
        assert run_cli(capsys, "-p", str(root), "report", "--out", str(report))[0] == 0
        html = report.read_text()
        assert f">{shown}</span>" in html and "UTC UTC" not in html
    finally:
        monkeypatch.delenv("TZ", raising=False)
        if hasattr(time, "tzset"):
            time.tzset()
