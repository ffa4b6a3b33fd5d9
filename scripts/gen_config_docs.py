"""Regenerate .env.example and the README's configuration table from the variable lists."""
from __future__ import annotations

import re
from pathlib import Path

from gateway.config import VARIABLES
from gateway.ops.settings import OPS_VARIABLES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    everything = VARIABLES + OPS_VARIABLES
    lines = ["# Copy to .env for local use (python-dotenv loads it). Leave every Twilio and LiveKit",
             "# credential empty to run in sandbox mode with loopback doubles.", ""]
    for name, required, desc in everything:
        lines += [f"# {desc}{' (required outside sandbox)' if required else ''}", f"{name}=", ""]
    (ROOT / ".env.example").write_text("\n".join(lines))
    table = ["| Variable | Required | What it is |", "|---|---|---|"]
    table += [f"| `{name}` | {'yes' if req else ''} | {desc} |" for name, req, desc in everything]
    readme = (ROOT / "README.md").read_text()
    readme = re.sub(r"<!-- config -->.*?<!-- /config -->", "<!-- config -->\n" + "\n".join(table) + "\n<!-- /config -->",
                    readme, flags=re.S)
    (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
