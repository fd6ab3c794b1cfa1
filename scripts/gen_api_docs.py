"""Write docs/openapi.json and the endpoint table of docs/API.md from the app's OpenAPI schema.

Usage: .venv/bin/python scripts/gen_api_docs.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from heimdall.service.app import create_app
from heimdall.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        schema = create_app(Settings(home=Path(home))).openapi()
    (DOCS / "openapi.json").write_text(json.dumps(schema, indent=2) + "\n")
    rows = []
    for path, operations in sorted(schema["paths"].items()):
        for method, operation in operations.items():
            summary = (operation.get("summary") or "").replace("|", "\\|")
            rows.append(f"| `{method.upper()}` | `{path}` | {summary} |")
    text = (DOCS / "API.md").read_text() if (DOCS / "API.md").exists() else ""
    head = text.split("<!-- endpoints -->")[0] if "<!-- endpoints -->" in text else "# REST API\n\n"
    table = "\n".join(["| method | path | what |", "|---|---|---|", *rows])
    (DOCS / "API.md").write_text(f"{head}<!-- endpoints -->\n{table}\n")


if __name__ == "__main__":
    main()
