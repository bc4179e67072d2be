"""Hot reads' answers, written to JSON once: `JSONAnswer`.

A route that returns a model has FastAPI check it against the response model and serialize it. For a read whose
values are already typed (asyncpg decodes the row, PostgreSQL formats the timestamps, comm.timestamps) that is the
second validation of the same data, after the model's own `__init__`: for blog's page of 20 posts, building the 20
models and dumping them took 290 µs where building the same answer as plain data and writing it with
pydantic-core's `to_json` (Rust, the serializer FastAPI itself calls) took 110 µs, in a loop on this project's
2-core machine. So the hot reads (blog's posts, comment's lists, the gateway's articles) build their answer as
plain data in the API's names, and return it as a `JSONAnswer`, which FastAPI sends as it is. The route still names
its model (`response_model=`), which documents the answer in OpenAPI; each such read has a test checking its answer
against that model's JSON schema (`comm.testing.assert_matches_model`), so the model stays the one definition of
the shape. Writes and rare reads keep returning models.

Ids go in as text (`str(row["id"])`): asyncpg decodes a uuid column to its own subclass of `uuid.UUID`, which
`to_json` writes by a slow path, about 4 µs each against 0.1 µs for the text (0.2 µs to make it), and orjson not at
all (it goes to the fallback below): the two ids of each post of a page cost more than everything else `to_json` did
for it.

The writer is orjson, not `to_json`: for plain data it is the faster of the two by about four (blog's page of 20,
in a loop: 4.7 µs against 20 µs; in the running service, sampled by py-spy under `make bench`'s load, `to_json`
was 8 % of the page's CPU). What orjson would write differently from pydantic (datetimes: `+00:00` where pydantic
writes `Z`) or not at all (decimals, asyncpg's UUID subclass, models) goes to pydantic-core's `to_jsonable_python`
instead, and an integer past 64 bits, which orjson refuses outright, sends the whole answer to `to_json`: an answer
reads the same whichever writes it (libs/comm/tests/test_answers.py).
"""

from typing import Any

import orjson
from pydantic_core import to_json, to_jsonable_python
from starlette.responses import Response

# An answer built as plain data, in the names its model writes (`{"article": {...}}`).
JSONObject = dict[str, Any]


class JSONAnswer(Response):
    """`content` (dicts, lists, str, int, bool, None) as JSON, written by orjson; anything else as pydantic would."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, default=to_jsonable_python, option=orjson.OPT_PASSTHROUGH_DATETIME)
        except TypeError:  # an integer past 64 bits: orjson refuses it without asking `default`
            return to_json(content)
