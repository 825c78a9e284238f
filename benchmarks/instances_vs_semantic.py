"""Instance masks against semantic masks split into connected components, on one test split.

The `instances` task's default scenes put digits of one class against each other. A
semantic segmenter labels their pixels correctly and still cannot say where one digit
ends: splitting its mask into connected components (what one would do without an
instance model) merges touching same-class digits into one object. This trains the
segmentation task's U-Net (its default config) on the same scenes' semantic masks,
splits its predictions (and, as an upper bound of the approach, the true semantic masks)
into 8-connected components per class, and scores them with the COCO mask AP the
instances task reports, beside the instance model's own figures.

    python -m benchmarks.instances_vs_semantic                       # U-Net trained here
    python -m benchmarks.instances_vs_semantic --instances runs/instances --epochs 6
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from zoo.data import instance_scenes, scenes
from zoo.data.coco_eval import coco_ap
from zoo.data.images import image_info, to_unit_range
from zoo.harness.trainer import fit
from zoo.task import Dataset
from zoo_tasks.instances.metrics import ground_truth
from zoo_tasks.segmentation import SegmentationConfig, SegmentationTask

EIGHT_NEIGHBOURS = np.ones((3, 3), bool)


class TouchingScenesSegmentation(SegmentationTask):
    """The segmentation task on the instances task's scenes: each digit's pixels labelled
    with its class (1 + digit), instances merged."""

    def load_data(self) -> Dataset:
        splits = instance_scenes.load_instance_scenes(instance_scenes.InstanceSceneConfig())
        data = {s: {"image": a["image"], "label": semantic_labels(a)} for s, a in splits.items()}
        classes = ["background", *scenes.CLASSES]
        return Dataset(data, image_info(classes, data["train"]["image"], "instance scenes",
                                        ignore_index=255))


def semantic_labels(split: dict[str, np.ndarray]) -> np.ndarray:
    """(N, H, W) uint8 class labels (0 background, 1 + digit) from instance-id maps."""
    ids = split["instances"].astype(np.int64)
    owner_class = np.take_along_axis(split["classes"], np.maximum(ids - 1, 0).reshape(len(ids), -1),
                                     axis=1).reshape(ids.shape)
    return np.where(ids > 0, owner_class + 1, 0).astype(np.uint8)


def components(labels: np.ndarray, probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One image's objects: every 8-connected component of every class of an (H, W)
    semantic label map, scored by the mean probability of its class over it (1 without
    `probs` (H, W, C))."""
    boxes, classes, scores, masks = [], [], [], []
    for cls in np.unique(labels[labels > 0]):
        blobs, count = ndimage.label(labels == cls, structure=EIGHT_NEIGHBOURS)
        for blob in range(1, count + 1):
            mask = blobs == blob
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            classes.append(cls - 1)
            scores.append(probs[mask, cls].mean() if probs is not None else 1.0)
            masks.append(mask)
    return {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "classes": np.array(classes, int),
            "scores": np.array(scores, np.float32),
            "masks": np.array(masks, bool) if masks else np.zeros((0, *labels.shape), bool)}


def scores_of(truth: list, found: list) -> dict[str, float]:
    masks, boxes = coco_ap(truth, found, 10, "segm"), coco_ap(truth, found, 10, "bbox")
    return {"mask_ap": masks["ap"], "mask_ap50": masks["ap50"], "box_ap": boxes["ap"],
            "box_ap50": boxes["ap50"]}


def unet_components(workdir: Path, test: dict[str, np.ndarray], batch: int = 100) -> list[dict]:
    from zoo.restore import from_workdir

    model = from_workdir(workdir, "segmentation").inference_model()
    forward = jax.jit(lambda x: jax.nn.softmax(model(to_unit_range(x)), -1))
    found = []
    for start in range(0, len(test["image"]), batch):
        probs = np.asarray(forward(jnp.asarray(test["image"][start:start + batch])))
        found += [components(p.argmax(-1), p) for p in probs]
    return found


def instance_model_scores(workdir: str | None) -> tuple[str, dict]:
    """The instances task's test figures: of a trained workdir, or the embedded card's."""
    from zoo.restore import from_hub, from_workdir

    restored = from_workdir(workdir, "instances") if workdir else from_hub("instances")
    return f"CondInst ({restored.source})", restored.evaluate("test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=SegmentationConfig().train.epochs)
    parser.add_argument("--workdir", default="runs/unet-touching-scenes",
                        help="where the U-Net trains (resumes if it holds a run)")
    parser.add_argument("--instances", help="a trained instances workdir (default: the "
                                            "embedded pretrained CondInst)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    test = instance_scenes.load_instance_scenes(instance_scenes.InstanceSceneConfig())["test"]
    truth = [ground_truth(test, i) for i in range(len(test["image"]))]
    rows = [("true semantic masks, connected components",
             scores_of(truth, [components(m) for m in semantic_labels(test)]))]
    cfg = SegmentationConfig()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=args.epochs))
    unet = fit(TouchingScenesSegmentation(cfg), args.workdir, quiet=True)["metrics"]
    rows.append((f"U-Net (test mIoU {unet['miou']:.3f}, {args.epochs} epochs), connected "
                 f"components",
                 scores_of(truth, unet_components(Path(args.workdir), test))))
    rows.append(instance_model_scores(args.instances))
    table = ["| objects from | mask AP | mask AP50 | box AP | box AP50 |", "|---|---|---|---|---|"]
    table += [f"| {name} | {r['mask_ap']:.3f} | {r['mask_ap50']:.3f} | {r['box_ap']:.3f} | "
              f"{r['box_ap50']:.3f} |" for name, r in rows]
    print("\n".join(table))
    if args.out:
        Path(args.out).write_text("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
