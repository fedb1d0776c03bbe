"""Images in a letter: where they may come from, and the size they are shown at.

An issue may show `https://` images, or files in the issues folder's `beelden/` that
`newsletter serve` publishes under `/beelden/`. Every image is at most the column's width: a
local file gets its own width and height (read with Pillow, scaled down to the column) for
Outlook, which ignores CSS; a remote image's size is unknown, so it gets the column's width only
and keeps its proportions everywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from PIL import Image, UnidentifiedImageError

from newsletter.i18n import _

FOLDER = "beelden"  # in the issues folder; published by `newsletter serve` under /beelden/
COLUMN = 536  # px: the email's 600 px body less the text's padding (32 px each side)
FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "GIF": "GIF"}  # what every mail client shows
_LOCAL = re.compile(r"^/?" + FOLDER + r"/([A-Za-z0-9][A-Za-z0-9._-]*)$")
STYLE = "display:block;max-width:100%;height:auto;border:0;margin:0 0 1.1em;"


class ImageError(ValueError):
    """An image reference an issue may not use; the message says why, for the author."""


@dataclass(frozen=True)
class Shown:
    """How one image is shown: its absolute address and the size attributes it gets."""

    url: str
    width: int
    height: int | None  # None for a remote image: its proportions are unknown


def local_name(src: str) -> str | None:
    """The file name when `src` points into beelden/ ('beelden/zee.jpg' or '/beelden/…')."""
    match = _LOCAL.match(src)
    return match.group(1) if match else None


def natural_size(path: Path) -> tuple[int, int]:
    """The image file's width and height; ImageError when it is not a JPEG, PNG or GIF."""
    return _natural_size(path, path.stat().st_mtime_ns if path.is_file() else 0)


@lru_cache(maxsize=256)
def _natural_size(path: Path, _mtime: int) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            if image.format not in FORMATS:
                raise ImageError(
                    _("is a {kind} image; use JPEG, PNG or GIF").format(kind=image.format)
                )
            return image.size
    except FileNotFoundError:
        raise ImageError(_("is not there")) from None
    except (UnidentifiedImageError, OSError):
        raise ImageError(_("is not an image a mail program can show (JPEG, PNG or GIF)")) from None


def check_source(src: str, folder: Path) -> None:
    """Raise ImageError unless an issue may show `src` (an https:// address or a file here)."""
    name = local_name(src)
    if name is not None:
        try:
            natural_size(folder / name)
        except ImageError as exc:
            raise ImageError(f"{folder / name} {exc}") from None
        return
    parts = urlsplit(src)
    if parts.scheme == "https" and parts.netloc:
        return
    if parts.scheme == "http":
        raise ImageError(_("{source} is http://; use an https:// address").format(source=src))
    raise ImageError(
        _(
            "{source} is neither an https:// address nor a file in {folder}/ "
            "(write {images}/name.jpg)"
        ).format(source=src, folder=folder, images=FOLDER)
    )


@dataclass(frozen=True)
class Images:
    """Resolves image references for one installation: its public address and beelden/ folder."""

    base_url: str
    folder: Path
    column: int = COLUMN

    def show(self, src: str) -> Shown | None:
        """How `src` is shown; None for a reference the checks refuse (never shown)."""
        name = local_name(src)
        if name is None:
            parts = urlsplit(src)
            if parts.scheme != "https" or not parts.netloc:
                return None
            return Shown(src, self.column, None)
        url = f"{self.base_url}/{FOLDER}/{quote(name)}"
        try:
            width, height = natural_size(self.folder / name)
        except ImageError:
            # Checked when it was queued, gone since: shown at the column's width, unscaled.
            return Shown(url, self.column, None)
        if width > self.column:
            height = max(1, round(height * self.column / width))
            width = self.column
        return Shown(url, width, height)
