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
`to_json` writes by a slow path, about 4 µs each against 0.1 µs for the text (0.2 µs to make it): the two ids of each
post of a page cost more than everything else `to_json` did for it.
"""

from typing import Any

from pydantic_core import to_json
from starlette.responses import Response

# An answer built as plain data, in the names its model writes (`{"article": {...}}`).
JSONObject = dict[str, Any]


class JSONAnswer(Response):
    """`content` (dicts, lists, str, int, bool, None) as JSON, written by pydantic-core."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return to_json(content)
