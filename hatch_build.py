"""Hatchling build hook: compile the message catalogs (.po to .mo) into the package.

`pip install .` and `pip install -e .` both run it, so the wheel (and a checkout) carries the
compiled Dutch and English catalogs of `newsletter/locale/`; the .mo files are not in git.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CatalogsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        root = Path(self.root)
        for source in sorted((root / "newsletter" / "locale").glob("*/LC_MESSAGES/*.po")):
            with source.open("rb") as handle:
                catalog = read_po(handle, locale=source.parent.parent.name)
            for message in catalog:  # a half-translated plural would show an empty line
                if isinstance(message.string, tuple) and not all(message.string):
                    message.string = ""
            target = source.with_suffix(".mo")
            with target.open("wb") as handle:
                write_mo(handle, catalog)
            build_data.setdefault("artifacts", []).append(str(target.relative_to(root)))
