"""docs/asyncapi.yaml is the event registry's (comm.events.models) and a valid AsyncAPI 3 document.

The official parser (`@asyncapi/parser`, from the npm registry on first use into `.asyncapi/`, ignored by git, as
newman is) validates it.
"""

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from comm.events.asyncapi import document
from comm.events.models import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
PARSER_DIR = ROOT / ".asyncapi"
PARSER = PARSER_DIR / "node_modules" / "@asyncapi" / "parser"
VALIDATE = """
const { Parser } = require(process.argv[1]);
(async () => {
  const { document, diagnostics } = await new Parser().parse(require("fs").readFileSync(process.argv[2], "utf8"));
  console.log(JSON.stringify(diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message }))));
  process.exit(document ? 0 : 1);
})();
"""


async def _run(*command: str, within: float) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), within)
    return process.returncode, output.decode(errors="replace")


def test_the_document_is_the_registrys() -> None:
    written = yaml.safe_load(DOCUMENT.read_text())
    assert written == document(), "docs/asyncapi.yaml is stale: run `make asyncapi`"
    addresses = {channel["address"] for channel in written["channels"].values()}
    assert addresses == {model.routing_key for model in EVENT_TYPES}


@pytest.mark.timeout(360)
async def test_the_document_is_valid_asyncapi() -> None:
    if not PARSER.exists():
        status, output = await _run(
            "npm",
            "install",
            "--prefix",
            str(PARSER_DIR),
            "--no-audit",
            "--no-fund",
            "@asyncapi/parser@3.6.6",
            within=300,
        )
        assert status == 0, output
    status, output = await _run("node", "-e", VALIDATE, str(PARSER), str(DOCUMENT), within=60)
    assert status == 0, output
    diagnostics = json.loads(output.strip().splitlines()[-1])
    errors = [d for d in diagnostics if d["severity"] == 0]  # 0 error, 1 warning, 2 info, 3 hint
    assert errors == [], errors
