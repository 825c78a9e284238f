"""One process of a two-process run for tests/test_streaming.py:
`sharded_reader.py PORT RANK SOURCE LOG`.

Joins the run (JAX on CPU, one device per process, coordinator on 127.0.0.1), takes its
rows of each global batch from the mesh as the trainer does (`placement.process_rows`),
and reads one training epoch of SOURCE (a pickled `Source`, so that this process need
not import the tasks' modules) with an input worker process. The worker
appends the file of every example it decodes to LOG; this process prints its rows and
batch shapes as JSON.
"""

import json
import pickle
import sys

from zoo.data.pipeline import Inputs
from zoo.data.sources import Source
from zoo_hardware import distributed, placement

BATCH, SEED, EPOCH = 8, 5, 1


class LoggedReads(Source):
    """Another source whose every read appends the example's file to a log."""

    def __init__(self, parent: Source, log: str):
        self.parent, self.log = parent, log

    def __len__(self):
        return len(self.parent)

    def read(self, index):
        with open(self.log, "a") as f:
            f.write(self.parent.origin(index) + "\n")
        return self.parent.read(index)

    def finish(self, example):
        return self.parent.finish(example)

    def fingerprint(self):
        return self.parent.fingerprint()


if __name__ == "__main__":
    port, rank, source, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    distributed.initialize(2, rank, f"127.0.0.1:{port}")
    rows = placement.process_rows(placement.make_mesh(), BATCH)
    with open(source, "rb") as f:
        train = pickle.load(f)
    from sharded_reader import LoggedReads as Logged  # by module name, for the worker

    inputs = Inputs({"train": Logged(train, log)}, seed=SEED, workers=1)
    try:
        shapes = [b["image"].shape for b in inputs.train(BATCH, epoch=EPOCH, rows=rows)]
    finally:
        inputs.close()
    print(json.dumps({"rows": [rows.start, rows.stop], "shapes": shapes}), flush=True)
    distributed.barrier("read")  # neither leaves while the other still needs the coordinator
