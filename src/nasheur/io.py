"""Artefacts are written atomically: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; the umask decides
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.filename is None:  # a failed write (a full disk, a quota) names no file
            exc.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    """This process's umask, read without setting it where Linux says it (another thread may
    be making a file meanwhile): a runs folder shared by a group (umask 002) keeps the files
    that a member rewrites (Hydra's record among them) writable by the others."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as fh,
    ):
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporaries that `atomic_path` left in `folder` for the files `names` when
    its process was killed mid-write (a checkpoint's can be as large as the checkpoint).
    Only those: the folder may be the user's own (``hydra.run.dir=.``). Only for a folder
    whose writer holds it alone (a job under its lock). Returns what it removed."""
    # `atomic_path`'s names: ".<file>." + tempfile's 8 random characters + ".tmp"
    ours = re.compile("|".join(rf"\.{re.escape(n)}\.[a-z0-9_]{{8}}\.tmp" for n in names))
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if ours.fullmatch(tmp.name) and tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def jsonable(obj: Any) -> Any:
    """Plain JSON data: non-finite floats become null (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy and torch scalars
        return jsonable(obj.item())
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in `path`; ValueError for text that is not JSON, JSON nested too deeply for
    the decoder (a damaged or crafted file) included, and for bytes that are not UTF-8."""
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except RecursionError:
            raise ValueError("JSON nested too deeply to read") from None


def flush_stdout() -> None:
    """Flush stdout; nothing where it is closed (``>&-``: ``sys.stdout`` is None, and print
    writes nothing)."""
    if sys.stdout is not None:
        sys.stdout.flush()


def run_piped(main: Callable[[], int]) -> int:
    """`main()`'s exit status; 141, without a traceback, when the reader of its output went
    away (``python -m nasheur.results show runs | head``), as a shell tool exits on SIGPIPE."""
    try:
        status = main()
        flush_stdout()
    except BrokenPipeError:
        # the interpreter flushes stdout again at exit: point it at nothing first
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    return status
