"""Data sets for pose: generated stick figures, or COCO person-keypoints json plus images.

Every split holds "image" uint8 (N, S, S, 3), "keypoints" float32 (N, M, K, 3) pixel
(x, y, visibility), "boxes" float32 (N, M, 4) pixel (x0, y0, x1, y1), "area" float32
(N, M) (the OKS scale) and "person_valid" bool (N, M): people padded to the data set's
largest count M, so every batch has one shape. `Dataset.info` carries the skeleton
(joint names, limbs, OKS sigmas).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import coco
from zoo.data.images import image_info, letterbox, load_image
from zoo.errors import ZooError, unknown
from zoo.task import Dataset
from zoo_tasks.pose.figures import FigureConfig, load_figures
from zoo_tasks.pose.skeleton import COCO_PERSON, Skeleton

DATASETS = {
    "figures": "generated stick figures, several overlapping people per image with COCO's "
               "17 joints and visibility (offline; the default)",
    "coco-keypoints:ANN.json:IMAGES/": "your COCO person-keypoints annotations and image "
                                       "folder (letterboxed to image_size; any skeleton, "
                                       "with its OKS sigmas in --set sigmas=...)",
}


def load(spec: str, figures: FigureConfig, image_size: int, sigmas: Sequence[float]) -> Dataset:
    if spec == "figures":
        splits = load_figures(figures)
        skeleton = _with_sigmas(COCO_PERSON, sigmas, f"--data {spec}")
        return Dataset(splits, image_info(["person"], splits["train"]["image"], spec,
                                          dark_background=False, **skeleton.to_info()))
    if spec.startswith("coco-keypoints:"):
        ann, sep, images_dir = spec.removeprefix("coco-keypoints:").partition(":")
        if not sep or not ann or not images_dir:
            raise ZooError(f"--data {spec}: expected coco-keypoints:ANNOTATIONS.json:IMAGES_DIR")
        return load_coco_keypoints(Path(ann), Path(images_dir), image_size, sigmas, spec)
    raise unknown("data set", spec, DATASETS)


def load_coco_keypoints(ann_path: Path, images_dir: Path, size: int, sigmas: Sequence[float],
                        spec: str) -> Dataset:
    """COCO keypoints json + images, letterboxed to size x size, split 70/10/20 by image.

    The one category with `keypoints` names the joints (its `skeleton` the limbs,
    1-based); annotations of other categories and crowd annotations are left out.

    Raises:
      ZooError: for anything `zoo.data.coco` refuses, no or several keypoint
        categories, a bad skeleton, keypoints of the wrong length or visibility,
        outside their image or disagreeing with num_keypoints, a bad box or area, or
        sigmas missing (for a skeleton other than COCO's person) or of the wrong length.
    """
    parsed = coco.read_json(ann_path)
    category = _keypoint_category(parsed["categories"], ann_path)
    skeleton = _skeleton(category, sigmas, ann_path)
    per_image = coco.objects_per_image(parsed, [c.get("id") for c in parsed["categories"]],
                                       ann_path, keep=[category["id"]])
    most = max(1, max(len(a) for a in per_image.values()))
    n, k = len(parsed["images"]), skeleton.num_joints
    arrays = {"image": np.zeros((n, size, size, 3), np.uint8),
              "keypoints": np.zeros((n, most, k, 3), np.float32),
              "boxes": np.zeros((n, most, 4), np.float32),
              "area": np.zeros((n, most), np.float32),
              "person_valid": np.zeros((n, most), bool)}
    for i, record in enumerate(parsed["images"]):
        image = load_image(images_dir / record["file_name"], None, 3)
        square, scale, offset = letterbox(image, size)
        anns = per_image[record["id"]]
        where = f"{ann_path}: image {record['file_name']}"
        keypoints = np.zeros((len(anns), k, 3), np.float32)
        for j, ann in enumerate(anns):
            keypoints[j] = _checked_keypoints(ann, k, image.shape, where)
        boxes = coco.checked_boxes(anns, image.shape, ann_path, record["file_name"])
        labelled = keypoints[..., 2:] > 0
        keypoints[..., :2] = np.where(labelled, keypoints[..., :2] * scale + offset, 0)
        arrays["image"][i] = square
        arrays["keypoints"][i, :len(anns)] = keypoints
        arrays["boxes"][i, :len(anns)] = boxes * np.tile(scale, 2) + np.tile(offset, 2)
        arrays["area"][i, :len(anns)] = [_area(a, b, where) for a, b in zip(anns, boxes)]
        arrays["area"][i] *= scale.prod()
        arrays["person_valid"][i, :len(anns)] = True
    data = {s: {f: a[j] for f, a in arrays.items()} for s, j in coco.splits(n).items()}
    name = str(category.get("name", category["id"]))
    return Dataset(data, image_info([name], arrays["image"], spec, dark_background=False,
                                    **skeleton.to_info()))


def _keypoint_category(categories: list, path: Path) -> Mapping[str, Any]:
    found = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
    if len(found) != 1:
        names = [str(c.get("name", c.get("id"))) for c in found]
        raise ZooError(f"{path}: {len(found)} categories list keypoints ({', '.join(names)}); "
                       f"need exactly one, with its joint names in `keypoints`")
    return found[0]


def _skeleton(category: Mapping[str, Any], sigmas: Sequence[float], path: Path) -> Skeleton:
    names = tuple(str(name) for name in category["keypoints"])
    limbs = category.get("skeleton", [])
    bad = [l for l in limbs if not (isinstance(l, list) and len(l) == 2 and
                                    all(isinstance(j, int) and 1 <= j <= len(names) for j in l))]
    if bad:
        raise ZooError(f"{path}: skeleton limb {bad[0]!r} is not a pair of joint numbers "
                       f"1..{len(names)} (COCO numbers keypoints from 1)")
    default = COCO_PERSON.sigmas if names == COCO_PERSON.names else ()
    if not sigmas and not default:
        raise ZooError(f"{path}: its {len(names)} keypoints are not COCO's 17 person joints, "
                       f"so OKS needs their sigmas: --set sigmas=s1,...,s{len(names)} (one per "
                       f"keypoint, e.g. 0.025 for an eye, 0.107 for a hip)")
    skeleton = Skeleton(names, tuple((a - 1, b - 1) for a, b in limbs), default or
                        (1.0,) * len(names))
    return _with_sigmas(skeleton, sigmas, str(path))


def _with_sigmas(skeleton: Skeleton, sigmas: Sequence[float], where: str) -> Skeleton:
    """`skeleton` with `sigmas` (--set sigmas=...) in place of its own, if given."""
    if not sigmas:
        return skeleton
    if len(sigmas) != skeleton.num_joints or not all(s > 0 for s in sigmas):
        raise ZooError(f"{where}: --set sigmas needs {skeleton.num_joints} positive values, one "
                       f"per keypoint ({', '.join(skeleton.names)}); got {len(sigmas)}")
    return Skeleton(skeleton.names, skeleton.limbs, tuple(float(s) for s in sigmas))


def _checked_keypoints(ann: Mapping[str, Any], k: int, shape: tuple[int, ...],
                       where: str) -> np.ndarray:
    """(k, 3) float32 keypoints of one COCO annotation, checked against its image."""
    name = f"{where}: annotation {ann.get('id')}"
    values = ann.get("keypoints")
    if not isinstance(values, list) or len(values) != 3 * k or \
            not all(isinstance(v, (int, float)) for v in values):
        got = len(values) if isinstance(values, list) else repr(values)
        raise ZooError(f"{name} has {got} keypoint values; expected 3 x {k} numbers "
                       f"(x, y, visibility for each keypoint)")
    keypoints = np.asarray(values, np.float32).reshape(k, 3)
    v = keypoints[:, 2]
    if not np.isin(v, (0, 1, 2)).all():
        raise ZooError(f"{name} has visibility {v[~np.isin(v, (0, 1, 2))][0]:g}; COCO's are 0 "
                       f"(not labelled), 1 (labelled, hidden) and 2 (visible)")
    h, w = shape[:2]
    xy = keypoints[v > 0, :2]
    if ((xy < -coco.TOLERANCE) | (xy > np.array([w, h]) + coco.TOLERANCE)).any():
        raise ZooError(f"{name} has a labelled keypoint outside its {w}x{h} image; fix it "
                       f"or mark it visibility 0")
    labelled = int((v > 0).sum())
    if ann.get("num_keypoints", labelled) != labelled:
        raise ZooError(f"{name} says num_keypoints {ann['num_keypoints']} but labels "
                       f"{labelled} (visibility > 0)")
    keypoints[:, :2] = np.clip(keypoints[:, :2], 0, np.array([w, h]))
    return keypoints


def _area(ann: Mapping[str, Any], box: np.ndarray, where: str) -> float:
    """The OKS area: the annotation's segment `area`, else its box's."""
    area = ann.get("area", float((box[2] - box[0]) * (box[3] - box[1])))
    if not isinstance(area, (int, float)) or not area > 0:
        raise ZooError(f"{where}: annotation {ann.get('id')} has area {area!r}; OKS needs a "
                       f"positive area (or leave it out to use the box's)")
    return float(area)
