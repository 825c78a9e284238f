"""Layouts users already have, on tiny generated fixtures: ImageNet folders, Pascal VOC
(boxes and masks), Hugging Face folders (save_to_disk, parquet), and `zoo data pack` /
`packed:` (a pack holds the examples of the spec it packed; a killed pack continues)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from zoo.cli.main import main
from zoo.data import hf
from zoo.data.image_sets import load_image_set
from zoo.data.packed import read_manifest
from zoo.errors import ZooError
from zoo.harness.inputs import load
from zoo.registry import get_task

pa = pytest.importorskip("pyarrow")


def _jpeg(path, value: int, size=(16, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def _examples(source) -> list[dict]:
    return [source[i] for i in range(len(source))]


# -- ImageNet ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """train/ with 3 classes of 4 images, val/ with 2 of them; pixel value = class * 80."""
    root = tmp_path_factory.mktemp("imagenet")
    for c, name in enumerate(("n01", "n02", "n03")):
        for i in range(4):
            _jpeg(root / "train" / name / f"{i}.JPEG", 80 * c)
        if c < 2:
            _jpeg(root / "val" / name / "0.JPEG", 80 * c)
    return root


def test_imagenet_layout_streams_train_and_val_with_train_s_classes(imagenet):
    data = load_image_set(f"imagenet:{imagenet}", 8, 3)
    assert data.info["classes"] == ["n01", "n02", "n03"]
    assert [data.size(s) for s in ("train", "val", "test")] == [11, 1, 2]  # val/ is test
    for split in data.splits.values():
        for example in _examples(split):
            assert example["image"].shape == (8, 8, 3)
            assert abs(int(example["image"].mean()) - 80 * int(example["label"])) <= 2


def test_imagenet_val_class_missing_from_train_is_explained(tmp_path):
    _jpeg(tmp_path / "train" / "a" / "0.jpg", 0)
    _jpeg(tmp_path / "train" / "c" / "0.jpg", 0)
    _jpeg(tmp_path / "val" / "b" / "0.jpg", 0)
    with pytest.raises(ZooError, match="val/ has class folder.*b.*train/ lacks"):
        load_image_set(f"imagenet:{tmp_path}", 8, 3)


# -- Pascal VOC -------------------------------------------------------------------------------

def _voc_xml(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    x0, y0, x1, y1 = box
    return (f"<annotation><size><width>20</width><height>16</height></size>"
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin>"
            f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            f"<object><name>dog</name><difficult>{difficult}</difficult><bndbox><xmin>1</xmin>"
            f"<ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>")


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """VOC2012-like: 5 images (20x16), each a cat box (+ a difficult dog in image 0),
    a palette mask labelling the box 8 (cat) with a 255 border; train 3, val 2."""
    root = tmp_path_factory.mktemp("voc") / "VOC2012"
    ids = [f"2012_{i:06d}" for i in range(5)]
    for i, image_id in enumerate(ids):
        _jpeg(root / "JPEGImages" / f"{image_id}.jpg", 40 * i)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            _voc_xml("cat", (3, 5, 12, 14), difficult=int(i == 0)))
        mask = np.zeros((16, 20), np.uint8)
        mask[4:14, 2:12], mask[3, 2:12] = 8, 255
        (root / "SegmentationClass").mkdir(exist_ok=True)
        png = Image.fromarray(mask, "P")
        png.putpalette([0, 0, 0] * 256)
        png.save(root / "SegmentationClass" / f"{image_id}.png")
    for kind in ("Main", "Segmentation"):
        (root / "ImageSets" / kind).mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / kind / "train.txt").write_text("\n".join(ids[:3]) + "\n")
        (root / "ImageSets" / kind / "val.txt").write_text("\n".join(ids[3:]) + "\n")
    return root


def test_voc_boxes_are_read_from_xml_one_based_and_letterboxed(voc):
    from zoo_tasks.detection import data

    ds = data.load(f"voc:{voc}", None, image_size=40)  # 20x16 -> 40x32, 4 px of padding
    assert ds.info["classes"][7] == "cat" and len(ds.info["classes"]) == 20
    assert [ds.size(s) for s in ("train", "val", "test")] == [2, 1, 2]
    for split in ds.splits.values():
        for ex in _examples(split):
            assert ex["image"].shape == (40, 40, 3) and ex["boxes"].shape == (2, 4)
            cat = ex["boxes"][ex["classes"] == 7][0]
            np.testing.assert_allclose(cat, [4, 8 + 4, 24, 28 + 4])  # (2, 4, 12, 14) x 2
    counts = [int(ex["box_valid"].sum()) for s in ds.splits.values() for ex in _examples(s)]
    assert sorted(counts) == [1, 2, 2, 2, 2]  # the difficult dog of image 0 is left out


def test_voc_masks_keep_class_indices_and_the_ignored_border(voc):
    from zoo_tasks.segmentation import data

    ds = data.load(f"voc:{voc}", None, image_size=20, num_classes=0)
    assert len(ds.info["classes"]) == 21 and ds.info["classes"][8] == "cat"
    label = ds.splits["test"][0]["label"]  # 20x16 -> 20x16 in a 20x20 square, 2 px top
    assert label.shape == (20, 20)
    assert (label[6:16, 2:12] == 8).all() and (label[5, 2:12] == 255).all()
    assert (label[:2] == 255).all()  # letterbox padding is ignored, not background


def test_voc_without_split_lists_is_explained(tmp_path):
    from zoo_tasks.detection import data

    with pytest.raises(ZooError, match="ImageSets/Main/train.txt"):
        data.load(f"voc:{tmp_path}", None, image_size=40)


# -- Hugging Face -----------------------------------------------------------------------------

def _png_bytes(value: int) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(out, "PNG")
    return out.getvalue()


def _image_table(labels: list[int]):
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.table({"img": pa.array([{"bytes": _png_bytes(100 * y), "path": None}
                                      for y in labels], image),
                     "label": pa.array(labels, pa.int64())})


FEATURES = {"img": {"_type": "Image"}, "label": {"names": ["zero", "one"], "_type": "ClassLabel"}}


def _save_to_disk(root, splits: dict):
    """The layout `DatasetDict.save_to_disk` writes: Arrow stream files, state.json and
    dataset_info.json per split, dataset_dict.json listing the splits."""
    for name, table in splits.items():
        (root / name).mkdir(parents=True)
        with pa.OSFile(str(root / name / "data-00000-of-00001.arrow"), "wb") as sink, \
                pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        (root / name / "state.json").write_text(json.dumps(
            {"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": name}))
        (root / name / "dataset_info.json").write_text(json.dumps({"features": FEATURES}))
    (root / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    return root


def test_hf_save_to_disk_images_with_class_names(tmp_path):
    root = _save_to_disk(tmp_path, {"train": _image_table([0, 1, 0, 1, 1, 0]),
                                    "test": _image_table([1, 0])})
    data = load_image_set(f"hf:{root}", 4, 3)
    assert data.info["classes"] == ["zero", "one"]
    assert [data.size(s) for s in ("train", "val", "test")] == [5, 1, 2]
    for split in data.splits.values():
        for ex in _examples(split):
            assert ex["image"].shape == (4, 4, 3) and ex["image"].mean() == 100 * ex["label"]


def test_hf_parquet_translation_pairs(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    pairs = [{"en": f"one {i}", "fr": f"un {i}"} for i in range(5)]
    meta = {"info": {"features": {"translation": {"languages": ["en", "fr"],
                                                  "_type": "Translation"}}}}
    for split, rows in (("train", pairs[:3]), ("validation", pairs[3:4]), ("test", pairs[4:])):
        table = pa.table({"translation": rows}).replace_schema_metadata(
            {"huggingface": json.dumps(meta)})
        pq.write_table(table, tmp_path / f"{split}-00000-of-00001.parquet")
    out = hf.text_pairs(str(tmp_path))
    assert out == {"train": [("one 0", "un 0"), ("one 1", "un 1"), ("one 2", "un 2")],
                   "val": [("one 3", "un 3")], "test": [("one 4", "un 4")]}
    assert hf.text_pairs(str(tmp_path), "fr-en")["test"] == [("un 4", "one 4")]


def test_hf_folder_without_data_is_explained(tmp_path):
    with pytest.raises(ZooError, match="no dataset_dict.json, state.json or \\*.parquet"):
        load_image_set(f"hf:{tmp_path}", 4, 3)


# -- zoo data pack / packed: ------------------------------------------------------------------

@pytest.fixture(scope="module")
def packed(imagenet, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "imagenet"
    args = ["data", "pack", f"imagenet:{imagenet}", str(out), "--task", "classification",
            "--set", "image_size=16", "--workers", "1", "--examples-per-shard", "4"]
    assert main(args) == 0
    return out, args


def test_a_pack_holds_the_examples_of_its_spec(imagenet, packed):
    out, _ = packed
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s: v["count"] for s, v in manifest["splits"].items()} == \
        {"train": 11, "val": 1, "test": 2}
    assert len(manifest["splits"]["train"]["shards"]) == 3  # 4 + 4 + 3
    assert manifest["info"]["classes"] == ["n01", "n02", "n03"]
    assert manifest["fields"] == {"image": ["|u1", [16, 16, 3]], "label": ["<i4", []]}
    task = get_task("classification")
    original = load_image_set(f"imagenet:{imagenet}", 16, 3)
    reread = load(task(task.Config(data=f"packed:{out}", image_size=16)))
    for split in ("train", "val", "test"):
        for a, b in zip(_examples(original.splits[split]), _examples(reread.splits[split])):
            assert np.array_equal(a["image"], b["image"]) and a["label"] == b["label"]
    assert main(["data", "verify", str(out)]) == 0


def test_a_killed_pack_continues_and_ends_the_same(packed, capsys):
    out, args = packed
    manifest = json.loads((out / "manifest.json").read_text())
    # As a kill leaves it: no manifest, a shard half written, its record missing.
    (out / "manifest.json").unlink()
    (out / "done" / "train-00001.json").unlink()
    shard = out / "train-00001-of-00003.arrayrecord"
    shard.rename(shard.with_name(shard.name + ".tmp"))
    with pytest.raises(ZooError, match="unfinished: run the same `zoo data pack`"):
        read_manifest(out)
    assert main(args) == 0
    assert "resuming: 4 of 5 shard(s) already written" in capsys.readouterr().err
    again = json.loads((out / "manifest.json").read_text())
    assert again["splits"] == manifest["splits"]  # the same shards, byte for byte (sha256)


def test_a_pack_refuses_another_spec_in_its_folder(packed, capsys):
    out, args = packed
    before = (out / "manifest.json").read_bytes()
    assert main([*args[:7], "image_size=20", *args[8:]]) == 2
    assert "holds another pack" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == before
