"""The README stays in step with the code: every command has help and a line, every setting a row."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from newsletter.cli import main
from newsletter.settings import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "newsletter") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.extend(commands(command, path))
        else:
            found.append((path, command))
    return found


@pytest.mark.parametrize(("path", "command"), commands(main), ids=lambda v: str(v))
def test_every_command_has_help_and_is_documented(path: str, command: click.Command) -> None:
    assert command.help, f"{path} has no help text"
    assert path in README, f"{path} is not in README.md"


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"`{env_name(field)}`" in README, f"{env_name(field)} is not in README.md"


def test_readme_gives_the_two_commands() -> None:
    assert "make demo" in README
    assert "make test" in README
