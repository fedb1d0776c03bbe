"""Where a send's time goes, with py-spy: the share of GIL-holding samples per part of the engine.

    .venv/bin/pip install py-spy
    .venv/bin/python -m benchmarks.profile [--variant none|rsa|ed25519] [--subscribers 20000]

Runs `newsletter send` to N subscribers under `py-spy record --gil` against Postfix's smtp-sink,
as `benchmarks.run` does, and prints how many samples were taken while a thread held the GIL and
which share of them fell in each part (a part's callees included).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import NEWSLETTER, ROOT, SUNDAY, Sink, environment, populate
from benchmarks.costs import write_keys

PARTS = (
    "EditionMessage.build",
    "Signer.signatures",
    "BodyHasher.digest",
    "sign_ed25519",
    "sign_rsa",
    "dot_stuffed",
    "_transaction",
    "ConnectionLoop._record",
    "format_datetime",
    "<module>",
)


def shares(raw: Path) -> tuple[int, dict[str, float]]:
    """Total samples, and the share of them whose stack holds each part."""
    found: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for part in PARTS:
            if part in stack:
                found[part] += int(count)
    return total, {part: found[part] / max(total, 1) for part in PARTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=["none", "rsa", "ed25519"], default="ed25519")
    parser.add_argument("--subscribers", type=int, default=20_000)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with (
        tempfile.TemporaryDirectory() as keys_dir,
        tempfile.TemporaryDirectory() as tmp,
        Sink("postfix") as sink,
    ):
        work = Path(tmp)
        url = f"sqlite:///{work / 'bench.db'}"
        env = {**environment(url, sink.port, 2), **write_keys(Path(keys_dir))[args.variant]}
        populate(url, args.subscribers)
        issue = sorted((ROOT / "issues").glob("*.md"))[0]
        subprocess.run([NEWSLETTER, "issues", "queue", str(issue)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        raw = work / "profile.txt"
        command = [spy, "record", "--gil", "--format", "raw", "-o", str(raw), "--"]
        subprocess.run([*command, NEWSLETTER, "send", "--now", SUNDAY], env=env, check=True,
                       capture_output=True)  # fmt: skip
        total, found = shares(raw)
    print(f"{args.variant}: {total} samples holding the GIL")
    for part, share in found.items():
        print(f"{share * 100:5.1f} %  {part}")


if __name__ == "__main__":
    main()
