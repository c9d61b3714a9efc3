"""Result tables: rows of named values, written as CSV, JSON and Markdown, and a resumable row store."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from typing import Iterable, Sequence


class Table:
    """A list of rows (dicts) with a fixed column order.

    ``columns``: names in display order; rows may leave a column out (written empty / ``null``);
    ``shown``: the subset :meth:`to_markdown` prints by default (CSV and JSON hold every column).
    Values are numbers, strings, bools or None.
    """

    def __init__(self, name: str, columns: Sequence[str], rows: Iterable[dict] = (),
                 shown: Sequence[str] | None = None):
        self.name = str(name)
        self.columns = list(columns)
        self.shown = list(shown) if shown is not None else self.columns  # the columns Markdown shows
        self.rows = [dict(r) for r in rows]
        for r in self.rows:
            unknown = set(r) - set(self.columns)
            if unknown:
                raise ValueError(f"table {self.name!r}: row has columns {sorted(unknown)} not in {self.columns}")

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list:
        """Values of one column (None where a row lacks it)."""
        if name not in self.columns:
            raise KeyError(f"table {self.name!r} has no column {name!r}")
        return [r.get(name) for r in self.rows]

    def where(self, **match) -> list[dict]:
        """Rows whose values equal every ``column=value`` given."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]

    def to_csv(self, path) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in self.columns})
        write_text(path, buf.getvalue())

    def to_json(self, path) -> None:
        write_text(path, json.dumps({"name": self.name, "columns": self.columns, "rows": self.rows},
                                    indent=1, default=_jsonable) + "\n")

    def to_markdown(self, columns: Sequence[str] | None = None, digits: int = 3) -> str:
        cols = list(columns) if columns is not None else self.shown
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(_fmt(r.get(c), digits) for c in cols) + " |")
        return "\n".join(lines)

    def write(self, folder) -> list[str]:
        """Write ``<name>.csv`` and ``<name>.json`` into ``folder``; return the two paths."""
        os.makedirs(folder, exist_ok=True)
        paths = [os.path.join(folder, f"{self.name}.csv"), os.path.join(folder, f"{self.name}.json")]
        self.to_csv(paths[0])
        self.to_json(paths[1])
        return paths


class RowStore:
    """Rows computed so far, keyed by a string, kept in a JSON file so that interrupted work resumes.

    ``settings`` (JSON-able) are stored with the rows; a file written under other settings is
    ignored and overwritten, so changed settings never mix with old results.
    """

    def __init__(self, path, settings: dict):
        self.path = os.fspath(path)
        self.settings = json.loads(json.dumps(settings, default=_jsonable))
        self.rows: dict[str, dict] = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                try:
                    saved = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{self.path!r} is not a result store (corrupt JSON: {err})") from err
            if not isinstance(saved, dict) or "rows" not in saved:
                raise ValueError(f"{self.path!r} is not a result store")
            if saved.get("settings") == self.settings:
                self.rows = dict(saved["rows"])

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def put(self, key: str, row: dict) -> dict:
        """Store ``row`` under ``key`` and write the file atomically; return the row."""
        self.rows[key] = json.loads(json.dumps(row, default=_jsonable))
        write_text(self.path, json.dumps({"settings": self.settings, "rows": self.rows}, indent=1) + "\n")
        return self.rows[key]


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(value, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 10 ** -digits):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}"
    return str(value)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
