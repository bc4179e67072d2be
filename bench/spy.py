"""Profiling for the HTTP benchmarks (`--profile DIR`): py-spy on the apps while wrk drives one target.

py-spy records each app's collapsed stacks (`DIR/<app>.txt`, for flamegraph.pl or speedscope); the summary prints
the functions that take the most CPU. py-spy samples wall time of threads that are not idle: on a busy machine
absolute counts mean little, proportions still hold.
"""

import asyncio
import re
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from loadgen import Result, pinned
from stack import LOAD_CORE, Apps

from comm.testing import SERVICES


async def profile(
    apps: Apps, load: Callable[[float], Awaitable[Result]], out: Path, *, seconds: float, profiled: Sequence[str]
) -> None:
    """py-spy on the `profiled` apps while `load` drives them; the top CPU consumers of each."""
    if not shutil.which("py-spy"):
        print("\n--profile: py-spy not found (uv run --with py-spy python bench/cost.py --profile DIR)")
        return
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    spies = [
        await asyncio.create_subprocess_exec(
            *pinned(LOAD_CORE),
            "py-spy",
            "record",
            "--pid",
            str(apps.processes[app].pid),
            "--duration",
            f"{seconds:g}",
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out / f"{app}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for app in profiled
    ]
    result = await load(seconds + 1)
    for spy in spies:
        await spy.wait()
    print(f"\nprofile: {result.rps:.0f} req/s while sampled, collapsed stacks in {out}/")
    for app in profiled:
        print_top(app, out / f"{app}.txt")


WORKSPACE_FRAME = re.compile(rf"\((?:{'|'.join(SERVICES)}|comm)/")  # py-spy names files by their package path


def print_top(app: str, path: Path, top: int = 12) -> None:
    """The event loop's thread: the workspace's functions with the most samples on the stack, any function's at its
    top. Worker threads (anyio's pool, exporters) are left out: py-spy often counts them busy while they wait."""
    if not path.exists():
        print(f"  {app}: no samples (py-spy needs ptrace: run as root or set kernel.yama.ptrace_scope=0)")
        return
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";") if frame]
        if not frames or frames[0].startswith(("Thread._bootstrap ", "_bootstrap ")):
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            if WORKSPACE_FRAME.search(frame):
                inclusive[frame] += samples
    print(f"\n  {app}: {total} samples of the event loop's thread")
    for title, counter in (("inclusive, workspace code", inclusive), ("self, any code", own)):
        print(f"    top {title}:")
        for frame, samples in [(f, n) for f, n in counter.most_common(top + 2) if n < total][:top]:  # not main()
            print(f"      {100 * samples / max(1, total):5.1f}%  {_short(frame)}")


def _short(frame: str) -> str:
    return re.sub(r"\(/.*?/(site-packages|src)/", "(", frame)
