"""A letter with a wide image in Chromium, at 390 and 1280 px: as email and as its page online.

The screenshots are kept in test-artifacts/screenshots/ (letter-*.png) to be looked at; the test
measures what they show: the image inside the card, the question box whole and on screen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page

from tests.support.browsers import SIZES, chromium, shoot, watched_page
from tests.support.issue_files import write_issue
from tests.support.relays import body_of
from tests.support.servers import Site

pytestmark = pytest.mark.browser

BODY = """\
Soms is het uitzicht breder dan je scherm.

![De zee bij avond, breed als de horizon](beelden/horizon.png)

Ik adem in,
ik adem uit,
en alles mag er zijn.
"""

MEASURE = """(selectors) => {
  const box = (selector) => {
    const found = document.querySelector(selector);
    if (!found) return null;
    const r = found.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width};
  };
  const image = document.querySelector(selectors.image);
  return {
    viewport: document.documentElement.clientWidth,
    scroll: document.documentElement.scrollWidth,
    image: box(selectors.image),
    loaded: image.complete && image.naturalWidth > 0,
    card: box(selectors.card),
    question: box(selectors.question),
    heading: box(selectors.heading),
  };
}"""

EMAIL = {"image": ".nl-prose img", "card": ".nl-card", "question": ".nl-question", "heading": "h1"}
WEB = {"image": ".prose img", "card": ".card.letter", "question": ".question", "heading": "h1"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def measured(page: Page, selectors: dict[str, str]) -> dict[str, Any]:
    page.wait_for_function(f"document.querySelector('{selectors['image']}').complete")
    found: dict[str, Any] = page.evaluate(MEASURE, selectors)
    return found


def fits(found: dict[str, Any], width: int) -> None:
    """The image inside the card, the card and the question box inside the screen."""
    card, image, question = found["card"], found["image"], found["question"]
    assert found["loaded"], "the image did not load"
    assert found["scroll"] <= width, "the page scrolls sideways"
    assert card["left"] >= 0 and card["right"] <= width
    assert image["left"] >= card["left"] and image["right"] <= card["right"]
    assert question["left"] >= card["left"] and question["right"] <= card["right"]
    assert question["width"] > 0.6 * card["width"]  # whole, not squeezed beside the image
    if width < 600:
        assert card["left"] >= 8 and width - card["right"] >= 8, "no gutter around the card"


def test_a_wide_image_fits_the_letter_on_a_phone_and_a_desktop(
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "issues"
    (folder / "beelden").mkdir(parents=True)
    Image.new("RGB", (2400, 700), "#6b8fa8").save(folder / "beelden" / "horizon.png")
    site.cli("issues", "queue", str(write_issue(folder, "horizon", body=BODY)))
    site.cli("subscribers", "add", "anna@example.com", "--name", "Anna", "--consent", "test")
    site.cli("send", "--now", "2025-11-02T07:00")
    [letter] = site.wait_for_mail(1)
    html = body_of(letter.message, "html")

    for size, (width, height) in SIZES.items():
        with watched_page(browser, width, height) as page:
            page.set_content(html, wait_until="load")
            found = measured(page, EMAIL)
            shoot(page, "letter-email", size)
            fits(found, width)
            assert found["image"]["width"] <= 536
            assert found["heading"]["top"] < found["image"]["top"] < found["question"]["top"]

            page.goto(f"{site.url}/archief/horizon")
            found = measured(page, WEB)
            shoot(page, "letter-online", size)
            fits(found, width)
            assert page.locator("h1").inner_text() == "Een open hand"
            assert page.get_by_role("heading", name="Vraag voor deze week").is_visible()

            # The archive and the home page, kept to be looked at; no CSP complaint on any.
            page.goto(f"{site.url}/archief")
            assert page.locator(".letter-title").inner_text() == "Een open hand"
            shoot(page, "archive", size)
            page.goto(f"{site.url}/")
            assert page.get_by_role("link", name="Een open hand").is_visible()
            shoot(page, "home", size)
