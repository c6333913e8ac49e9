"""Reading the JSON files a plan is given (``--state``, ``--baseline``, ``--policy-pack-config``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sarkops.errors import SarkopsError


def read_json(path: Path | str, what: str, error: type[SarkopsError]) -> Any:
    """The parsed JSON of ``path``; ``error`` names the file and ``what`` it should have been when
    it cannot be read or is not JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{path}: cannot read {what}: {problem.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as problem:
        raise error(f"{path}: not valid JSON: {problem}") from None
