"""schemathesis against the gateway's own OpenAPI document: no 5xx, no answer that contradicts the schema.

All checks (`schemathesis.toml` at the root says which statuses two of them accept, and why), a bounded number of
examples per operation, as a signed-in user (a fresh account) so the routes behind authentication are exercised
too; a fixed seed keeps runs comparable.
"""

import asyncio
import os

import httpx
import pytest
from tests.conftest import Stack
from tests.test_flows import signup

EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15")
UPDATE_USER = "update_user_api_user_put"
# CPython 3.11.7 (this machine's) can crash hypothesis's code generation with this SystemError; not a finding.
INTERPRETER_BUG = "AST constructor recursion depth mismatch"


@pytest.mark.timeout(400)
async def test_gateway_conforms_to_its_openapi(stack: Stack, api: httpx.AsyncClient) -> None:
    # A password change revokes the token the run uses, so `PUT /api/user` runs apart, with its own account.
    for name, selection, budget in (
        ("main", ("--exclude-operation-id", UPDATE_USER), 150),
        ("update-user", ("--include-operation-id", UPDATE_USER), 30),
    ):
        user = await signup(api, "st")
        status, text = await _schemathesis(stack, token=user["token"], selection=selection, budget=budget)
        if status != 0 and INTERPRETER_BUG in text:  # the tool crashed, it found nothing: run it once more
            status, text = await _schemathesis(stack, token=user["token"], selection=selection, budget=budget)
        log = os.environ.get("SCHEMATHESIS_LOG", str(stack.logs / "schemathesis"))
        await asyncio.to_thread(_write, f"{log}-{name}.log", text)
        print(text[-2000:])
        assert status == 0, text[-12000:]


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


async def _schemathesis(stack: Stack, *, token: str, selection: tuple[str, ...], budget: int) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        "st", "run", f"{stack.url('gateway')}/openapi.json",
        *selection,
        "--checks", "all",
        # `--checks all` turns on even what schemathesis.toml turns off: the created-resource check (ST302) is
        # excluded here, for the reason given there.
        "--exclude-checks", "ensure_resource_availability",
        "--max-examples", EXAMPLES,
        "--seed", "20261129",
        # One worker: with two, one worker's stateful run could delete the article the other just created (they
        # share one account), which schemathesis then reports as a created resource not found.
        "--workers", "1",
        "--generation-database", "none",
        # Text in this API is UTF-8 without NUL (PostgreSQL stores neither NUL nor lone surrogates).
        "--generation-codec", "utf-8",
        "--generation-allow-x00", "false",
        "--max-time", str(budget),
        "--header", f"Authorization: Token {token}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), budget + 60)
    return process.returncode, output.decode(errors="replace")
