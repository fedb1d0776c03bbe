"""The schema changes only through Alembic: every revision walks down and up, and matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from newsletter.settings import Settings
from newsletter.storage.db import alembic_config, downgrade, make_engine, upgrade
from tests.support.cli import Cli


def test_every_revision_walks_down_and_up(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        config = alembic_config(engine)
        revisions = list(ScriptDirectory.from_config(config).walk_revisions("base", "heads"))
        upgrade(engine)
        for revision in revisions:  # newest first
            down = revision.down_revision
            assert down is None or isinstance(down, str), "the history has no merges"
            downgrade(engine, down or "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        for revision in reversed(revisions):
            upgrade(engine, revision.revision)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(engine: Engine) -> None:
    command.check(alembic_config(engine))  # raises if autogenerate would find a difference


def test_commands_refuse_a_database_with_pending_migrations(env: dict[str, str]) -> None:
    result = Cli(env)("subscribers", "list", code=1)
    assert "the database needs migrating" in result.stderr
    assert "newsletter db upgrade" in result.stderr


def test_db_upgrade_then_commands_work(env: dict[str, str]) -> None:
    cli = Cli(env)
    assert "up to date" in cli("db", "upgrade").stdout
    cli("subscribers", "list")
    assert "up to date" in cli("db", "upgrade").stdout  # twice is harmless


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()
