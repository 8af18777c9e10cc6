"""Lists of results that turn into a DataFrame or CSV: one flat row per item."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar


class Flat(Protocol):
    def row(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=Flat)


class Table(list[T], Generic[T]):
    """A plain list of runs or epoch rows, plus `to_pandas()`, `to_csv()` and `rows()`."""

    def rows(self) -> list[dict[str, Any]]:
        """Each item as a flat dict (config fields as their own columns)."""
        return [item.row() for item in self]

    def columns(self) -> list[str]:
        """Every column of any row, in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.rows():
            seen.update(dict.fromkeys(row))
        return list(seen)

    def to_pandas(self):
        """A pandas DataFrame, one row per item (needs the `pandas` extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "to_pandas() needs pandas: pip install 'resnet-lab[pandas]'"
            ) from None
        return pd.DataFrame(self.rows(), columns=self.columns())

    def to_csv(self, path: str | Path | None = None) -> str:
        """The rows as CSV text; also written to `path` when given."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        text = out.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text
