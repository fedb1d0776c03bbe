"""The page behind a test mail's unsubscribe and pause links: it says so, and changes nothing.

A test mail (`newsletter issues test`) carries a link of its own purpose where a reader's
unsubscribe link would be; GET, HEAD and POST (a mail client's one-click button) all answer
with the same page, and no reader is looked up or changed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from newsletter import links
from newsletter.web.pages import not_found, page, site


async def proof_page(request: Request) -> Response:
    """'Dit was een proefmail': the same page for every method; nothing is changed."""
    await request.body()  # a one-click POST's body is read and left alone
    token = request.path_params["token"]
    if links.read(site(request).keys, links.Purpose.PROOF, token) is None:
        return not_found(request)
    return page(request, "web/proof.html", pause_first="pauzeren" in request.query_params)
