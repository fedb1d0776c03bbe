"""Images in an issue: refused at the door when they would break, sized for every mail client."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from tests.support.cli import Cli
from tests.support.issue_files import write_issue

HEADER_LINES = 6  # write_issue: ---, theme, subject, question, preheader, ---


def images_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "issues" / "beelden"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_an_image_without_a_description_is_refused_with_its_line(cli: Cli, tmp_path: Path) -> None:
    Image.new("RGB", (800, 400)).save(images_folder(tmp_path) / "zee.png")
    body = "Eerst een alinea.\n\nEen alinea met\neen beeld erin ![](beelden/zee.png)\nen meer.\n"
    path = write_issue(tmp_path / "issues", "zonder", body=body)
    result = cli("issues", "check", str(path), code=1)
    line = HEADER_LINES + 4
    assert f"{path}:{line}: body: an image without a description" in result.stderr


def test_only_https_or_a_file_in_beelden(cli: Cli, tmp_path: Path) -> None:
    folder = images_folder(tmp_path)
    (folder / "kapot.png").write_text("geen beeld", encoding="utf-8")
    Image.new("RGB", (10, 10)).save(folder / "klein.webp")
    body = (
        "![Zee](http://voorbeeld.nl/zee.jpg)\n\n"
        "![Zee](elders/zee.jpg)\n\n"
        "![Zee](beelden/weg.png)\n\n"
        "![Zee](beelden/kapot.png)\n\n"
        "![Zee](beelden/klein.webp)\n\n"
        "![Zee](data:image/png;base64,AAAA)\n"
    )
    path = write_issue(tmp_path / "issues", "bronnen", body=body)
    err = cli("issues", "check", str(path), code=1).stderr
    first = HEADER_LINES + 1
    assert (
        f"{path}:{first}: body: image http://voorbeeld.nl/zee.jpg is http://; use an https://"
        in err
    )
    assert f"{path}:{first + 2}: body: image elders/zee.jpg is neither an https:// address" in err
    assert f"{path}:{first + 4}: body: image {folder / 'weg.png'} is not there" in err
    assert f"{path}:{first + 6}: body: image {folder / 'kapot.png'} is not an image" in err
    assert f"{path}:{first + 8}: body: image {folder / 'klein.webp'} is a WEBP image" in err
    assert f"{path}:{first + 10}: body: image data:" in err
    assert "nothing was queued" in cli("issues", "queue", str(path), code=1).stderr


def test_images_are_absolute_at_most_the_column_wide_with_their_size(
    cli: Cli, tmp_path: Path
) -> None:
    folder = images_folder(tmp_path)
    Image.new("RGB", (2400, 800)).save(folder / "breed.jpg")
    Image.new("RGB", (200, 150)).save(folder / "klein.png")
    body = (
        "![Een brede zee](beelden/breed.jpg)\n\n"
        "![Een kleine schelp](/beelden/klein.png)\n\n"
        "![Van elders](https://voorbeeld.nl/beeld.jpg)\n"
    )
    path = write_issue(tmp_path / "issues", "beelden", body=body)
    out = tmp_path / "preview.html"
    text = tmp_path / "preview.txt"
    cli("issues", "preview", str(path), "--out", str(out), "--text", str(text))
    images = re.findall(r"<img [^>]*>", out.read_text(encoding="utf-8"))
    base = "https://nieuws.example.nl/beelden"
    assert f'src="{base}/breed.jpg" alt="Een brede zee" width="536" height="179"' in images[0]
    assert f'src="{base}/klein.png" alt="Een kleine schelp" width="200" height="150"' in images[1]
    assert 'src="https://voorbeeld.nl/beeld.jpg" alt="Van elders" width="536" style=' in images[2]
    assert all("max-width:100%;height:auto" in image for image in images)
    assert "[Afbeelding: Een brede zee]" in text.read_text(encoding="utf-8")


def test_check_warns_when_the_letter_passes_80_kb(cli: Cli, tmp_path: Path) -> None:
    paragraph = "Een zin die rustig doorloopt, zoals een ademhaling die langer wordt. " * 12
    body = "\n\n".join([paragraph] * 110) + "\n"
    heavy = write_issue(tmp_path / "issues", "zwaar", body=body)
    light = write_issue(tmp_path / "issues", "licht")
    result = cli("issues", "check")
    assert "2 issue files OK" in result.stdout
    match = re.search(
        rf"{re.escape(str(heavy))}: warning: the letter's HTML is (\d+) KB", result.stderr
    )
    assert match and int(match.group(1)) > 80
    assert "Gmail may cut it off" in result.stderr
    assert str(light) not in result.stderr
