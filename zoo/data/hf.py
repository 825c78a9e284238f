"""Hugging Face data sets on disk, without network: `hf:PATH` is a folder written by
`datasets`' `save_to_disk` (a DatasetDict: dataset_dict.json and one folder per split; or
one Dataset), or a folder of parquet files as the hub stores them (`train-*.parquet`,
`validation-*.parquet`, `test-*.parquet`, or files under train/, validation/, test/).

Read with pyarrow alone (`pip install 'zoo[hf]'`): `datasets` needs pyarrow too and
brings pandas, fsspec, huggingface_hub and more, none of which reading needs. Arrow
files are memory-mapped, as `datasets` does, so an example is read where it lies: its
pages enter the page cache (counted in RSS, shared and reclaimable), nothing is copied.
Parquet files are converted once to Arrow in $ZOO_HOME/cache/hf (again as `datasets`
does; a row group at a time), because parquet has no random access to one row.

The features (ClassLabel names, Image, Translation) come from dataset_info.json or the
parquet schema's "huggingface" metadata.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.images import Preprocess, decode_image, resize
from zoo.data.sources import Example, Source, files_fingerprint
from zoo.errors import ZooError

SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val",
               "dev": "val", "test": "test"}


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401
    except ImportError:
        raise ZooError("hf: data sets need pyarrow: pip install 'zoo[hf]'") from None
    return pyarrow


class ArrowTable:
    """Arrow IPC stream files (as `datasets` writes them), memory-mapped on first use in
    each process; only the file names are pickled."""

    def __init__(self, files: Sequence[str | Path]):
        self.files = [str(f) for f in files]
        self._table = None

    def __getstate__(self):
        return {**self.__dict__, "_table": None}

    @property
    def table(self):
        if self._table is None:
            pa = _pyarrow()
            self._table = pa.concat_tables(
                [pa.ipc.open_stream(pa.memory_map(f)).read_all() for f in self.files])
        return self._table

    def __len__(self) -> int:
        return self.table.num_rows

    def value(self, column: str, index: int) -> Any:
        return self.table.column(column)[index].as_py()


class HFImages(Source):
    """Rows of an Arrow table with an Image column and a ClassLabel column."""

    def __init__(self, table: ArrowTable, image: str, label: str, size: Sequence[int],
                 channels: int, preprocess: Preprocess = Preprocess()):
        self.table, self.image, self.label, self.preprocess = table, image, label, preprocess
        self.size, self.channels = (int(size[0]), int(size[1])), channels
        self.count = len(table)

    def __len__(self) -> int:
        return self.count

    def origin(self, index: int) -> str:
        return f"{self.table.files[0]} row {index}"

    def _decode(self, index: int, size) -> Example:
        cell = self.table.value(self.image, index)
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise ZooError(f"{self.origin(index)}: the image has no bytes (stored by path "
                           f"{cell.get('path') if isinstance(cell, dict) else None!r})")
        image = decode_image(io.BytesIO(data), self.origin(index), size, self.channels,
                             self.preprocess)
        return {"image": image, "label": np.int32(self.table.value(self.label, index))}

    def read(self, index: int) -> Example:
        return self._decode(index, None)

    def __getitem__(self, index: int) -> Example:
        return self._decode(index, self.size)

    def finish(self, example: Example) -> Example:
        return {**example, "image": resize(example["image"], self.size, self.preprocess)}

    def fingerprint(self) -> str:
        return files_fingerprint("/", self.table.files, self.size, self.channels,
                                 self.preprocess.crop_pct, self.preprocess.interpolation)


def splits(path: str) -> tuple[dict[str, ArrowTable], dict[str, Any]]:
    """The splits of `hf:PATH` as Arrow tables (zoo's split names: train, val, test),
    and the features."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ZooError(f"hf:{path}: no such directory (a save_to_disk folder or parquet files)")
    if (root / "dataset_dict.json").is_file():
        names = json.loads((root / "dataset_dict.json").read_text())["splits"]
        found = {name: _saved(root / name) for name in names}
    elif (root / "state.json").is_file():
        found = {"train": _saved(root)}
    else:
        found = _parquet(root)
    tables, features = {}, {}
    for name, (table, feats) in found.items():
        if name not in SPLIT_NAMES:
            continue  # e.g. "unsupervised": not a split zoo trains or tests on
        tables[SPLIT_NAMES[name]], features = table, feats or features
    if "train" not in tables:
        raise ZooError(f"hf:{path}: no train split (found {', '.join(found) or 'none'})")
    return tables, features


def _saved(folder: Path) -> tuple[ArrowTable, dict]:
    """One split written by `Dataset.save_to_disk`: state.json lists its Arrow files."""
    state = json.loads((folder / "state.json").read_text())
    files = [folder / f["filename"] for f in state["_data_files"]]
    info = folder / "dataset_info.json"
    features = json.loads(info.read_text()).get("features", {}) if info.is_file() else {}
    return ArrowTable(files), features


def _parquet(root: Path) -> dict[str, tuple[ArrowTable, dict]]:
    """Parquet files by split (file name prefix or parent folder), converted to Arrow."""
    by_split: dict[str, list[Path]] = {}
    for file in sorted(root.rglob("*.parquet")):
        stem = file.name.split("-")[0].split(".")[0]
        split = stem if stem in SPLIT_NAMES else file.parent.name
        by_split.setdefault(split, []).append(file)
    if not by_split:
        raise ZooError(f"hf:{root}: no dataset_dict.json, state.json or *.parquet files")
    return {split: _converted(files) for split, files in by_split.items()}


def _converted(files: list[Path]) -> tuple[ArrowTable, dict]:
    """Parquet files as one cached Arrow stream file (made once, a row group at a time)."""
    from zoo.paths import cache_dir

    pa = _pyarrow()
    import pyarrow.parquet as pq

    key = files_fingerprint("/", [str(f.resolve()) for f in files])[:16]
    target = cache_dir("hf") / f"{files[0].stem}-{key}.arrow"
    schema = pq.read_schema(files[0])
    features = json.loads((schema.metadata or {}).get(b"huggingface", b"{}")).get(
        "info", {}).get("features", {})
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for file in files:
                parquet = pq.ParquetFile(file)
                for group in range(parquet.num_row_groups):
                    writer.write_table(parquet.read_row_group(group))
        tmp.replace(target)
    return ArrowTable([target]), features


def image_splits(path: str, size: Sequence[int], channels: int,
                 preprocess: Preprocess = Preprocess()) -> tuple[dict[str, Source], list[str]]:
    """`hf:PATH` for image classification: the Image column and the ClassLabel column
    (by feature type, else the columns named image/img and label/labels), resized as
    `preprocess` says."""
    tables, features = splits(path)
    table = tables["train"]
    image = _column(features, table, "Image", ("image", "img", "pixel_values"))
    label = _column(features, table, "ClassLabel", ("label", "labels", "fine_label"))
    names = features.get(label, {}).get("names")
    if not names:
        top = max(int(np.max(t.table.column(label).to_numpy())) for t in tables.values())
        names = [str(i) for i in range(top + 1)]
    from zoo.data.loader import three_splits

    sources = {name: HFImages(t, image, label, size, channels, preprocess) for name, t in tables.items()}
    return three_splits(sources), [str(n) for n in names]


def text_pairs(path: str, direction: str = "") -> dict[str, list[tuple[str, str]]]:
    """`hf:PATH[:SRC-TGT]` for translation: (source, target) sentences per split, from a
    Translation column ({"en": ..., "fr": ...}; SRC-TGT picks the languages, default
    the feature's order) or from the first two string columns."""
    tables, features = splits(path)
    table = tables["train"].table
    kinds = {name: f.get("_type") for name, f in features.items() if isinstance(f, dict)}
    pair = next((n for n, k in kinds.items() if k == "Translation"), None)
    if pair is None and "translation" in table.column_names:
        pair = "translation"
    out = {}
    for split, t in tables.items():
        if pair is not None:
            languages = direction.split("-") if direction else \
                features.get(pair, {}).get("languages") or list(t.value(pair, 0))
            if len(languages) != 2:
                raise ZooError(f"hf:{path}: give the direction as hf:PATH:SRC-TGT, e.g. :en-fr")
            rows = t.table.column(pair).to_pylist()
            out[split] = [(r[languages[0]], r[languages[1]]) for r in rows]
        else:
            strings = [n for n in t.table.column_names
                       if str(t.table.schema.field(n).type) in ("string", "large_string")]
            if len(strings) < 2:
                raise ZooError(f"hf:{path}: no Translation column and fewer than two text "
                               f"columns ({', '.join(t.table.column_names)})")
            out[split] = list(zip(t.table.column(strings[0]).to_pylist(),
                                  t.table.column(strings[1]).to_pylist()))
    return out


def _column(features: dict, table: ArrowTable, kind: str, names: Sequence[str]) -> str:
    typed = [n for n, f in features.items() if isinstance(f, dict) and f.get("_type") == kind]
    if typed:
        return typed[0]
    for name in names:
        if name in table.table.column_names:
            return name
    raise ZooError(f"hf: no {kind} column among {', '.join(table.table.column_names)} "
                   f"(a column of feature type {kind}, or named {' or '.join(names)})")

