"""Take the README's screenshots: one of each page, on the demo data, in headless Chromium.

    .venv/bin/python scripts/screenshots.py [--output docs/screenshots] [--gateway URL]

Walks the same journey as the browser test (tests/journey_helpers.py) against
`streamlit run app.py` on 127.0.0.1 with a fresh database in a temporary folder, so
data/studio.duckdb is never touched. The default gateway is the simulator with delivery
reports ten times faster than real ones, so the statistics have a spread of delivery times
to show. Needs /usr/bin/chromium (`make browser`) and the dev requirements (playwright).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.journey_helpers import (  # noqa: E402  (after the path is set)
    DEMO,
    AppServer,
    browser_page,
    screenshot,
    walk_journey,
)

# The journey's screenshot names → the README's file names. Other moments are skipped.
PICTURES = {
    "contacts-import-report": "contacts",
    "selections": "selections",
    "documents-preview": "documents",
    "mailing-wizard-confirm": "mailing-wizard",
    "mailings-finished": "mailings",
    "statistics": "statistics",
    "settings": "settings",
}
README_GATEWAY = "simulator://?seed=1&rate=1000&time_scale=0.1"
MAX_HEIGHT = 2600  # pixels: long pages are cut, the top is what a reader needs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "screenshots",
                        help="folder for the PNG files (default: docs/screenshots)")
    parser.add_argument("--gateway", default=README_GATEWAY,
                        help=f"gateway URL of the app (default: {README_GATEWAY})")
    args = parser.parse_args(argv)
    if not DEMO.exists():
        subprocess.run([sys.executable, "scripts/make_demo_data.py"], cwd=ROOT, check=True)
    args.output.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        if name in PICTURES:
            path = args.output / f"{PICTURES[name]}.png"
            screenshot(page, path, max_height=MAX_HEIGHT)
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    with tempfile.TemporaryDirectory(prefix="sms-studio-shots-") as folder:
        server = AppServer(Path(folder), gateway=args.gateway).start()
        try:
            with browser_page(server.url) as page:
                walk_journey(page, DEMO, shot)
        except Exception:
            print(server.tail(), file=sys.stderr)
            raise
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
