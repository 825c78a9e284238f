"""Tab-separated label and text files, with one-line errors that point at the line.

Shared by every task that reads a TSV (image lists, OCR transcriptions, sentence
pairs): a missing column, a short row, bytes that are not UTF-8, an empty file or a
label outside the known classes each stop with `file:line`, the problem and the fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.errors import ZooError, closest


@dataclasses.dataclass
class Table:
    """The rows of a TSV file, column by column.

    Attributes:
      path: the file, for messages.
      columns: column name -> one string per row.
      lines: the file's line number of each row.
    """

    path: Path
    columns: dict[str, list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.lines)

    def where(self, row: int) -> str:
        return f"{self.path}:{self.lines[row]}"

    def lookup(self, column: str, vocabulary: Sequence[str], what: str = "class") -> np.ndarray:
        """The index in `vocabulary` of each row's `column` value (int32).

        Raises:
          ZooError: at the first value outside `vocabulary`, naming file and line.
        """
        index = {name: i for i, name in enumerate(vocabulary)}
        for row, value in enumerate(self.columns[column]):
            if value not in index:
                known = ", ".join(vocabulary[:10]) + (", ..." if len(vocabulary) > 10 else "")
                raise ZooError(f"{self.where(row)}: unknown {what} {value!r}"
                               f"{closest(value, vocabulary)} in column {column!r}; known: "
                               f"{known}. Fix the row or drop it")
        return np.asarray([index[v] for v in self.columns[column]], np.int32)


def read_tsv(path: str | Path, columns: Sequence[str], *, optional: Sequence[str] = (),
             header: bool = True) -> Table:
    """Reads a UTF-8 TSV file into a `Table`.

    With `header`, the first line names the columns (in any order, extras ignored);
    without, each row's fields are `columns` in order. Blank lines are skipped.

    Raises:
      ZooError: for a missing file, bytes that are not UTF-8, a missing column, a row
        with too few fields, or no rows at all.
    """
    path = Path(path)
    lines = _decode(path).splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if header:
        if not numbered:
            raise ZooError(f"{path}: empty file; the first line must name the columns: "
                           f"{'<TAB>'.join(columns)}")
        (_, first), numbered = numbered[0], numbered[1:]
        names = [name.strip() for name in first.split("\t")]
        missing = [c for c in columns if c not in names]
        if missing:
            hint = closest(missing[0], names)
            raise ZooError(f"{path}:1: missing column {missing[0]!r}{hint} (found "
                           f"{', '.join(map(repr, names))}); the first line must name the "
                           f"tab-separated columns {', '.join(columns)}")
        positions = {c: names.index(c) for c in [*columns, *optional] if c in names}
    else:
        positions = {c: i for i, c in enumerate(columns)}
    if not numbered:
        raise ZooError(f"{path}: no rows after the header; the data set would be empty")
    table = Table(path, {c: [] for c in positions}, [])
    width = max(positions.values()) + 1
    for n, line in numbered:
        fields = line.split("\t")
        if len(fields) < width:
            raise ZooError(f"{path}:{n}: {len(fields)} field(s), expected {width} "
                           f"(tab-separated: {', '.join(positions)})")
        for column, i in positions.items():
            table.columns[column].append(fields[i].strip())
        table.lines.append(n)
    return table


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ZooError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ZooError(f"{path}: is a directory, expected a .tsv file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ZooError(f"{path}:{line}: byte 0x{raw[e.start]:02x} is not UTF-8; "
                       f"re-save the file as UTF-8") from None
