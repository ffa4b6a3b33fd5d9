"""app.json (Heroku button) stays in step with the variables the code reads."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.config import VARIABLES
from gateway.ops.settings import OPS_VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def test_app_json_lists_every_variable_with_its_required_flag():
    app = json.loads((ROOT / "app.json").read_text())

    declared = {name: required for name, required, _ in VARIABLES + OPS_VARIABLES}
    assert {name: entry["required"] for name, entry in app["env"].items()} == declared
    assert all(entry["description"] for entry in app["env"].values())


def test_app_json_platform_settings():
    app = json.loads((ROOT / "app.json").read_text())

    assert app["description"]
    assert app["addons"] == ["heroku-postgresql"]
    assert [b["url"] for b in app["buildpacks"]] == ["heroku/nodejs", "heroku/python"]
    assert "postdeploy" not in app.get("scripts", {})
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
