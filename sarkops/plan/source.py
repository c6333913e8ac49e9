"""Where in the program a resource was created: the file and line of the project's own frame.

The Python SDK sends a stack trace with every registration (``RegisterResourceRequest.stackTrace``,
topmost frame first; ``_get_stack_trace`` in pulumi/pulumi ``sdk/python/lib/pulumi/runtime/resource.py``)
and, as ``sourcePosition``, its first frame: the caller of the resource class's ``__init__``.
The engine stores that position relative to the project root as ``project:///<path>#<line>``
(``sourcePositions.parseSourcePosition`` in ``pkg/resource/deploy/source_eval.go``).

The SDK's first frame is already the program's line in this project; taking the first frame
that lies in the project (not in a library under ``site-packages``, the standard library or
sarkops itself) keeps that, and also gives the program's line when a library helper created
the resource on its behalf.
"""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

_SARKOPS_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
_LIBRARY_DIRS = tuple({str(Path(p).resolve()) + os.sep for p in (sysconfig.get_path("stdlib"),
                                                                  sysconfig.get_path("platstdlib")) if p})


@dataclass(frozen=True)
class SourcePosition:
    """A line of the program; ``file`` is absolute."""

    file: str
    line: int

    def relative_to(self, base: Path | str) -> str:
        """``file`` relative to ``base``, with ``/`` separators (``../`` if outside it)."""
        return Path(os.path.relpath(self.file, base)).as_posix()


def _path_of(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme != "file":
        return None
    return unquote(parts.path)


def _is_library(path: str) -> bool:
    return (f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path
            or path.startswith(_SARKOPS_DIR) or path.startswith(_LIBRARY_DIRS) or path.startswith("<"))


def from_stack_trace(trace: Any, root: Path | None = None) -> SourcePosition | None:
    """The first frame of ``trace`` (a ``pulumirpc.StackTrace``) in the program's own code.

    :param root: the project directory; when given, only frames in files under it count.
    """
    prefix = str(root.resolve()) + os.sep if root is not None else None
    for frame in trace.frames:
        if not frame.HasField("pc") or frame.pc.line <= 0:
            continue
        path = _path_of(frame.pc.uri)
        if path is None or _is_library(path):
            continue
        if prefix is not None and not path.startswith(prefix):
            continue
        return SourcePosition(path, frame.pc.line)
    return None


def from_request(request: Any, root: Path | None = None) -> SourcePosition | None:
    """The source position of a Register/ReadResource request (None if it carries none)."""
    if request.HasField("stackTrace"):
        position = from_stack_trace(request.stackTrace, root)
        if position is not None:
            return position
    if request.HasField("sourcePosition") and request.sourcePosition.line > 0:
        path = _path_of(request.sourcePosition.uri)
        if path is not None and not _is_library(path):
            return SourcePosition(path, request.sourcePosition.line)
    return None
