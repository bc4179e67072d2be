"""The official RealWorld Postman suite, run by newman against the gateway: 0 failed assertions out of ≥ 311.

The suite is an outside referee, not part of the repository: its folder is `REALWORLD_DIR`, or
`../shared/conformance/realworld` beside the repository (where CI puts it; `.ci/run` fails without it). Without
either the test is skipped, and the run's summary says why. newman comes from the npm registry on first use (into
`.newman/`, ignored by git).
"""

import asyncio
import json
import os
import uuid
from pathlib import Path

import pytest
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[1]
SUITE = Path(os.environ.get("REALWORLD_DIR") or ROOT.parent / "shared" / "conformance" / "realworld")
COLLECTION = SUITE / "Conduit.postman_collection.json"
NEWMAN_DIR = ROOT / ".newman"
NEWMAN = NEWMAN_DIR / "node_modules" / ".bin" / "newman"


async def _run(*command: str, within: float) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), within)
    return process.returncode, output.decode(errors="replace")


async def _install_newman() -> None:
    if NEWMAN.exists():
        return
    status, output = await _run(
        "npm", "install", "--prefix", str(NEWMAN_DIR), "--no-audit", "--no-fund", "newman@6.2.2", within=300
    )
    assert status == 0, output


@pytest.mark.skipif(
    not COLLECTION.is_file(),
    reason=f"RealWorld suite not found: no {COLLECTION} (set REALWORLD_DIR to the suite's folder to run it)",
)
@pytest.mark.timeout(400)
async def test_realworld_postman_suite_passes(stack: Stack, tmp_path: Path) -> None:
    await _install_newman()
    user = f"u{uuid.uuid4().hex[:10]}"
    report = tmp_path / "newman.json"
    status, output = await _run(
        str(NEWMAN),
        "run",
        str(COLLECTION),
        "--delay-request",
        "1",
        "--global-var",
        f"APIURL={stack.gateway}",
        "--global-var",
        f"USERNAME={user}",
        "--global-var",
        f"EMAIL={user}@mail.com",
        "--global-var",
        "PASSWORD=password",
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report),
        within=300,
    )
    stats = json.loads(report.read_text())["run"]["stats"]["assertions"]
    print(f"\nRealWorld suite: {stats['total']} assertions, {stats['failed']} failed")
    assert stats["failed"] == 0, output[-6000:]
    assert stats["total"] >= 311
    assert status == 0
