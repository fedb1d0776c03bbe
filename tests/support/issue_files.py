"""Writing issue files for tests: the tests use their own texts, not the sample issues."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Cli


def write_issue(
    folder: Path,
    name: str,
    *,
    theme: str = "loslaten",
    subject: str = "Een open hand",
    question: str = "Wat mag je deze week uit handen geven?",
    preheader: str | None = "Een korte overdenking voor de zondag.",
    body: str | None = None,
    extra: str = "",
) -> Path:
    """Write `folder/name.md` with front matter and body; each part can be set or left out.

    The default body names the file, so two files never hold the same text by accident (a
    text queued twice under two names is refused).
    """
    if body is None:
        body = (
            "Soms is *loslaten* het zachtste wat je kunt doen.\n\n"
            f"Adem uit, en kijk wat blijft.\n\nBrief {name}.\n"
        )
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["---", f"theme: {theme}", f"subject: {subject}", f"question: {question}"]
    if preheader is not None:
        lines.append(f"preheader: {preheader}")
    if extra:
        lines.append(extra)
    lines.append("---")
    path = folder / f"{name}.md"
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
    return path


def queue_and_import(cli: Cli, folder: Path, addresses: list[str]) -> None:
    """Queue one issue and import these addresses through the CLI, as an operator would."""
    cli("issues", "queue", str(write_issue(folder / "issues", "een")))
    csv = folder / "lezers.csv"
    csv.write_text("email\n" + "".join(f"{a}\n" for a in addresses), encoding="utf-8")
    cli("subscribers", "import", str(csv))
