"""The quick soak (`make soak ARGS=--quick`) in `make test`: the faults behind the defects fixed for it (a relay
killed between the broker's confirm and marking its rows, the broker hung past its heartbeats, a database refusing
connections for 30 s, a frozen service behind the gateway, auth's replicas a second apart, a post deleted under a
burst of comments), two replicas of every service, then the checker: nothing lost, nothing applied twice, no wrong
answer, every invariant back. Run as the script a user runs, so what passes here is what `make soak` prints."""

import asyncio
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).with_name("soak.py")


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_quick_soak_loses_nothing() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SOAK), "--quick", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 840)
    finally:
        if process.returncode is None:
            process.terminate()  # the soak undoes its faults and cleans up on SIGTERM
            await process.wait()
    text = output.decode(errors="replace")
    print(text)
    assert process.returncode == 0, text[-6000:]
    assert "soak: passed" in text
