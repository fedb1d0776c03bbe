"""Theme rotation and the schedule, as plain values with fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter.publishing.planning import latest_time, next_times, theme_order
from newsletter.settings import load_settings
from tests.support.cli import Cli

AMS = ZoneInfo("Europe/Amsterdam")
THEMES = ["loslaten", "vasthouden", "zachtheid"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def test_never_sent_themes_come_first_in_configured_order() -> None:
    assert theme_order(THEMES, {}) == THEMES
    last = {"loslaten": at("2026-11-29T07:00")}
    assert theme_order(THEMES, last) == ["vasthouden", "zachtheid", "loslaten"]


def test_the_longest_waiting_theme_comes_first() -> None:
    last = {
        "loslaten": at("2026-11-29T07:00"),
        "vasthouden": at("2026-11-15T07:00"),
        "zachtheid": at("2026-11-22T07:00"),
    }
    assert theme_order(THEMES, last) == ["vasthouden", "zachtheid", "loslaten"]


def test_sunday_seven_in_amsterdam_across_daylight_saving() -> None:
    settings = load_settings(_env_file=None)
    times = next_times(settings, at("2026-10-20T00:00"), 3)
    assert [t.astimezone(AMS).strftime("%Y-%m-%d %H:%M") for t in times] == [
        "2026-10-25 07:00",
        "2026-11-01 07:00",
        "2026-11-08 07:00",
    ]
    assert [t.astimezone(UTC).hour for t in times] == [6, 6, 6]


def test_latest_time_at_or_before_now() -> None:
    settings = load_settings(_env_file=None)
    sunday = at("2026-11-29T07:00")
    assert latest_time(settings, sunday) == sunday
    assert latest_time(settings, sunday - timedelta(seconds=1)) == at("2026-11-22T07:00")
    assert latest_time(settings, at("2026-12-02T12:00")) == sunday


def test_plan_shows_rotation_skips_and_where_the_queue_runs_dry(cli: Cli, tmp_path: Path) -> None:
    from tests.support.issue_files import write_issue

    folder = tmp_path / "issues"
    paths = [
        write_issue(folder, "v1", theme="vasthouden", subject="Houvast"),
        write_issue(folder, "l1", theme="loslaten", subject="Uitademen"),
        write_issue(folder, "l2", theme="loslaten", subject="Ruimte"),
    ]
    cli("issues", "queue", *map(str, paths))
    out = cli("issues", "plan", "--weeks", "5", "--now", "2026-11-24T12:00").stdout
    lines = [line for line in out.splitlines() if "2026-" in line]
    assert "loslaten" in lines[0] and "Uitademen" in lines[0] and "2026-11-29" in lines[0]
    assert "vasthouden" in lines[1] and "Houvast" in lines[1]
    # zachtheid has nothing queued: skipped, and loslaten comes round again.
    assert "loslaten" in lines[2] and "Ruimte" in lines[2]
    assert "skipped: zachtheid" in out
    assert "nothing queued" in lines[3]
    assert "runs dry on Sun 2026-12-20" in out
