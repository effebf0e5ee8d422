"""A digest of a JSON-lines file's content rather than its bytes.

A dataset republished elsewhere (MATH-500 on the Hugging Face Hub) may differ from the copy we
pinned in key order, escaping or spacing; the rows that decide a score must not differ at all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def rows_sha256(path: Path, fields: tuple[str, ...]) -> str:
    """sha256 of the rows' `fields` values, in file order, as compact UTF-8 JSON (a `.json` file
    is one array of rows, any other a row per line).

    Raises ValueError for a line that is not JSON, KeyError or TypeError for a row that is not
    an object with every field.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":  # one JSON array of rows (AlpacaEval's)
        records = json.loads(text)
        if not isinstance(records, list):
            raise TypeError(f"{path.name}: not a JSON array of rows")
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = [[record[field] for field in fields] for record in records]
    digest = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(digest.encode("utf-8")).hexdigest()
