"""What verification returns: one embedding per photo; pairs are compared from them.

The contract is one result per input, so `predict` returns an `Embedding` per photo
(unit length, with the similarity threshold the model chose on validation pairs).
Comparing is a step over results: `Embedding.similarity`, or `compare` for every pair,
which is what `zoo predict verification a.png b.png` prints (its `report`), and
`--embed FILE.npy` writes all the vectors as one array (its `write`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.predictions import FileOption, Result


@dataclass(frozen=True)
class Embedding(Result):
    """One photo's unit-length embedding and the similarity threshold to compare it at.

    Attributes:
      vector: (dim,) float32, unit length.
      threshold: cosine similarity at or above which two photos are the same person.
    """

    vector: np.ndarray
    threshold: float

    files = {"embed": FileOption("also write the embeddings of all inputs to this .npy file: "
                                 "(N, dim) float32, in input order", ".npy")}

    def similarity(self, other: Embedding) -> float:
        """Cosine similarity with `other` (both are unit length)."""
        return float(self.vector @ other.vector)

    def same_person(self, other: Embedding) -> bool:
        return self.similarity(other) >= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {"norm": round(float(np.linalg.norm(self.vector)), 6),
                "embedding": [round(float(v), 4) for v in self.vector], "threshold": self.threshold}

    def summary(self) -> str:
        return f"embedding of {len(self.vector)} dimensions (threshold {self.threshold:.3f})"

    @classmethod
    def write(cls, option, results, sources, images, out) -> list[Path]:
        """One (N, dim) array of every result."""
        path = Path(out)
        save_embeddings(path, np.stack([r.vector for r in results]).astype(np.float32))
        return [path] * len(results)

    @classmethod
    def report(cls, results, sources, written) -> list[str]:
        """Every pair's similarity and verdict, then where the embeddings went."""
        if len(results) < 2 and "embed" not in written:
            raise ZooError("give two photos to compare, or --embed OUT.npy to write embeddings")
        lines = [c.format() for c in compare(results, sources)]
        if "embed" in written:
            lines.append(f"wrote {len(results)} embeddings of {len(results[0].vector)} "
                         f"dimensions to {written['embed'][0]}")
        return lines

    @classmethod
    def json_report(cls, results, sources, written) -> dict[str, Any]:
        """Each input's embedding and every pair's comparison."""
        return {"inputs": super().json_report(results, sources, written),
                "pairs": [c.to_json() for c in compare(results, sources)]}


@dataclass(frozen=True)
class Comparison:
    """Two photos' cosine similarity and the call at `threshold`."""

    first: str
    second: str
    similarity: float
    threshold: float

    @property
    def same(self) -> bool:
        return self.similarity >= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "same": self.same}

    def format(self) -> str:
        verdict = "same person" if self.same else "different people"
        return (f"{self.first} {self.second}: similarity {self.similarity:.3f} -> {verdict} "
                f"(threshold {self.threshold:.3f})")


def compare(embeddings: Sequence[Embedding], sources: Sequence[str | None]) -> list[Comparison]:
    """Every pair of inputs (in input order), at the first one's threshold."""
    names = [s if s is not None else f"input {i}" for i, s in enumerate(sources)]
    return [Comparison(names[i], names[j], embeddings[i].similarity(embeddings[j]),
                       embeddings[i].threshold)
            for i, j in itertools.combinations(range(len(embeddings)), 2)]


def save_embeddings(path: Path, embeddings: np.ndarray) -> None:
    """Writes `path` (.npy) atomically; a missing folder is a one-line error."""
    if not path.parent.is_dir():
        raise ZooError(f"--embed {path}: no such folder {path.parent}")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, embeddings)
    tmp.replace(path)
