#!/usr/bin/env bash
# `make demo`: the whole weekly job on the embedded default (SQLite + outbox folder), from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
NEWSLETTER=.venv/bin/newsletter

export NEWSLETTER_DEMO=1   # allows the public demo signing key; never set this in production
export NEWSLETTER_DATABASE_URL="sqlite:///demo/newsletter.db"
export NEWSLETTER_OUTBOX_DIR="demo/outbox"
export NEWSLETTER_ISSUES_DIR="issues"

run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

rm -rf demo && mkdir -p demo
run $NEWSLETTER db upgrade
run $NEWSLETTER issues check
run $NEWSLETTER issues queue issues/*.md
run $NEWSLETTER subscribers import scripts/demo-subscribers.csv --consent "demo: made-up addresses"
run $NEWSLETTER subscribers list

# This week's job, as of the latest scheduled send time (the demo may run on any weekday).
LATEST=$(.venv/bin/python -c 'from datetime import UTC, datetime
from newsletter.publishing.planning import latest_time
from newsletter.settings import load_settings
s = load_settings()
print(latest_time(s, datetime.now(UTC)).astimezone(s.zone).isoformat())')
run $NEWSLETTER send --now "$LATEST"
run $NEWSLETTER status
run $NEWSLETTER issues plan --weeks 6
run $NEWSLETTER issues preview "$(ls issues/*.md | sed -n 2p)" --out demo/preview.html --name Lezer
# The author mails herself next week's letter, as her readers will get it ([Proef] in the subject).
NEWSLETTER_OUTBOX_DIR=demo/proef run $NEWSLETTER issues test "$(ls issues/*.md | sed -n 2p)" \
  --to auteur@example.org --name Lezer
run $NEWSLETTER issues list --status queued

first=$(find demo/outbox -name '*.eml' | sort | head -n 1)
cat <<MSG

Done. What happened:
  - the database is demo/newsletter.db (SQLite, WAL mode);
  - this week's edition went to $(find demo/outbox -name '*.eml' | wc -l) subscribers as .eml files in demo/outbox/
    (open one in a mail program, or read it: less "$first");
  - demo/preview.html shows next week's issue as a reader sees it (open it in a browser), and
    demo/proef/ holds the test mail of it the author would get in her own mailbox.

Try the one-click unsubscribe:
  NEWSLETTER_DEMO=1 NEWSLETTER_DATABASE_URL=sqlite:///demo/newsletter.db $NEWSLETTER serve
  then open the List-Unsubscribe address of a message (grep List-Unsubscribe "$first"),
  replacing http://localhost:8000 if you changed NEWSLETTER_BASE_URL.
  The sign-up form is at http://localhost:8000/ (its confirmation mail and the welcome after
  it land in demo/outbox/ too); this week's letter is online at http://localhost:8000/archief,
  with its feed at http://localhost:8000/archief/feed.xml.
MSG
