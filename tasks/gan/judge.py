"""The judge network: the zoo's own LeNet classifier, trained once per data set and cached.

It is trained by the classification task through the ordinary harness, with a fixed
seed, into `$ZOO_HOME/judges/<config hash>`; every later GAN run on the same data reuses
it. A copy also lives in each GAN checkpoint, so `zoo eval` reproduces a run's figures
with the very judge that measured them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys

from flax import nnx

from zoo.config import to_dict
from zoo.paths import cache_dir
from zoo_tasks.classification import ClassificationConfig, ClassificationTask

JUDGE_SEED = 0  # fixed: the judge is the same network whatever the GAN's seed


def judge_config(data: str, image_size: int, channels: int, *, epochs: int) -> ClassificationConfig:
    """The classification run that trains the judge for a GAN on data set `data`.

    It always sees the whole data set (a GAN's `train.max_examples` does not apply), so
    runs of any size on the same data share one judge.
    """
    base = ClassificationConfig()
    train = dataclasses.replace(base.train, epochs=epochs, seed=JUDGE_SEED)
    return dataclasses.replace(base, model="lenet", data=data, image_size=image_size,
                               channels=channels, train=train)


def load_judge(config: ClassificationConfig) -> nnx.Module:
    """The LeNet trained by `config`: from the cache, or trained now (once) and cached.

    Concurrent first uses each train into a private directory and the first rename
    wins, so the cache never holds a half-trained judge.
    """
    from zoo.restore import from_workdir
    from zoo.harness.trainer import fit

    digest = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()
    root = cache_dir("judges")
    workdir = root / f"lenet-{digest[:16]}"
    if not (workdir / "metrics.json").exists():
        print(f"gan: training the judge network once (LeNet on {config.data}, "
              f"{config.train.epochs} epochs) into {workdir}", file=sys.stderr)
        private = root / f".{workdir.name}.{os.getpid()}"
        shutil.rmtree(private, ignore_errors=True)
        fit(ClassificationTask(config), private, quiet=True)
        try:
            private.rename(workdir)
        except OSError:  # another process finished first: use its judge
            shutil.rmtree(private, ignore_errors=True)
    return from_workdir(workdir, ClassificationTask.name).inference_model()
