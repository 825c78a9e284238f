"""Pascal VOC, streamed: `voc:ROOT` with ROOT the VOC2007 or VOC2012 folder of VOCdevkit.

Detection reads ImageSets/Main/{train,val,test}.txt and each listed image's
Annotations/ID.xml (boxes are 1-based inclusive pixels; "difficult" objects are left
out); segmentation reads ImageSets/Segmentation/{train,val,test}.txt and the palette
PNGs of SegmentationClass/ (21 classes, 255 = the ignored object borders). Images
(JPEGImages/ID.jpg) are decoded only when a batch needs them. Without test.txt (VOC2012
publishes no test labels) val.txt is the test split and val is held out of train.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from zoo.data.coco import BoxedImages, CocoIndex, checked_box
from zoo.data.loader import three_splits
from zoo.data.masks import MaskedImages
from zoo.errors import ZooError

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
           "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
           "sofa", "train", "tvmonitor")


def split_ids(root: Path, kind: str) -> dict[str, list[str]]:
    """Image ids of each split listed in ImageSets/`kind` (Main or Segmentation)."""
    folder = root / "ImageSets" / kind
    names = {"train": "train", "val": "val", "test": "test"}
    found = {split: (folder / f"{name}.txt").read_text().split()
             for split, name in names.items() if (folder / f"{name}.txt").is_file()}
    if "train" not in found:
        raise ZooError(f"voc:{root}: no {folder}/train.txt; give the VOC2007 or VOC2012 "
                       f"folder (the one holding Annotations/, JPEGImages/, ImageSets/)")
    return found


def detection_splits(root: Path, size: int) -> tuple[dict, list[str]]:
    """{"train", "val", "test": BoxedImages} and the class names."""
    ids = split_ids(root, "Main")
    objects = {split: [_objects(root, i) for i in names] for split, names in ids.items()}
    found = sorted({name for split in objects.values() for image in split for name, _ in image[1]})
    names = list(CLASSES) if set(found) <= set(CLASSES) else found
    most = max(1, max(len(image[1]) for split in objects.values() for image in split))
    sources = {split: BoxedImages(_index(root, ids[split], images, names), size, most)
               for split, images in objects.items()}
    return three_splits(sources), names


def _objects(root: Path, image_id: str) -> tuple[tuple[int, int], list[tuple[str, np.ndarray]]]:
    """(width, height) and the (class name, x0 y0 x1 y1 box) of each object not marked
    difficult, from Annotations/ID.xml."""
    path = root / "Annotations" / f"{image_id}.xml"
    try:
        tree = ET.parse(path).getroot()
        size = (int(tree.findtext("size/width")), int(tree.findtext("size/height")))
        objects = []
        for obj in tree.iter("object"):
            if obj.findtext("difficult", "0").strip() == "1":
                continue
            box = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            xywh = [box[0] - 1, box[1] - 1, box[2] - box[0] + 1, box[3] - box[1] + 1]
            objects.append((obj.findtext("name").strip(),
                            checked_box(xywh, size, str(path), f"{image_id}.jpg")))
    except (OSError, ET.ParseError, TypeError, ValueError, AttributeError) as e:
        raise ZooError(f"{path}: not a readable VOC annotation ({e})") from None
    return size, objects


def _index(root: Path, ids: list[str], images: list, names: list[str]) -> CocoIndex:
    index = {name: i for i, name in enumerate(names)}
    counts = [len(objects) for _, objects in images]
    boxes = [box for _, objects in images for _, box in objects]
    return CocoIndex(root=str(root / "JPEGImages"),
                     files=np.asarray([f"{i}.jpg" for i in ids], np.str_),
                     sizes=np.asarray([s for s, _ in images], np.int64).reshape(-1, 2),
                     offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                     classes=np.asarray([index[n] for _, objects in images for n, _ in objects],
                                        np.int32),
                     names=names)


def segmentation_splits(root: Path, size: int) -> tuple[dict, list[str]]:
    """{"train", "val", "test": MaskedImages} and the 21 class names (background first)."""
    ids = split_ids(root, "Segmentation")
    classes = ["background", *CLASSES]
    sources = {split: MaskedImages([root / "JPEGImages" / f"{i}.jpg" for i in names],
                                   [root / "SegmentationClass" / f"{i}.png" for i in names],
                                   size, len(classes))
               for split, names in ids.items()}
    return three_splits(sources), classes
