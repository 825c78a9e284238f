"""Hostile and broken input: one line naming the file or value and the fix, exit code 2.

Table-driven over the bad files a user can hand zoo (images, TSV label files), config
values out of range and workdirs that are not ours to resume; nothing is written.
"""

import io
import re
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from zoo.data.images import load_image
from zoo.data.tables import read_tsv
from zoo.errors import ZooError

from helpers import cli_error


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height pixels: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


RGB = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
BAD_IMAGES = {
    "empty.png": (b"", "empty file, not an image"),
    "truncated.png": (_png(RGB)[:300], "unreadable image (image file is truncated)"),
    "garbage.jpg": (b"GIF89a? not really" * 20, "not a readable image"),
    "bomb.png": (_png_header(30_000, 30_000), "refused, image too large"),
}


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_image_files_are_named(tmp_path, name):
    content, message = BAD_IMAGES[name]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ZooError, match=re.escape(message)) as e:
        load_image(tmp_path / name, (28, 28), 1)
    assert str(tmp_path / name) in str(e.value) and "\n" not in str(e.value)


def test_float_images_are_refused_with_the_fix(tmp_path):
    Image.fromarray(np.random.rand(8, 8).astype(np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ZooError, match="mode F.*save it as an 8- or 16-bit image"):
        load_image(tmp_path / "f.tif")


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "1", "CMYK"])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_other_mode_or_shape_is_converted(tmp_path, mode, channels):
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    Image.fromarray(RGB).convert(mode).save(path)
    array = load_image(path, (28, 28), channels)
    assert array.shape == (28, 28, channels) and array.dtype == np.uint8


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    Image.fromarray(RGB[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    assert np.array_equal(load_image(tmp_path / "deep.png", channels=1)[..., 0], RGB[..., 0])


BAD_TABLES = {
    "no label column": (b"image\tlbl\na.png\tcat\n", "missing column 'label'"),
    "latin-1": ("image\tlabel\na.png\tcaf\u00e9\n".encode("latin-1"), ":2: byte 0xe9 is not UTF-8"),
    "short row": (b"image\tlabel\na.png\tcat\nb.png\n", ":3: 1 field(s), expected 2"),
    "header only": (b"image\tlabel\n", "no rows after the header"),
    "empty": (b"", "empty file; the first line must name the columns"),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_tsv_files_point_at_the_line(tmp_path, case):
    content, message = BAD_TABLES[case]
    (tmp_path / "labels.tsv").write_bytes(content)
    with pytest.raises(ZooError, match=re.escape(message)) as e:
        read_tsv(tmp_path / "labels.tsv", ["image", "label"])
    assert str(tmp_path / "labels.tsv") in str(e.value)


def test_tsv_reads_columns_in_any_order_and_skips_blank_lines(tmp_path):
    (tmp_path / "t.tsv").write_text("\ufefflabel\textra\timage\n\ncat\tx\ta.png\n dog \ty\tb.png\n")
    table = read_tsv(tmp_path / "t.tsv", ["image", "label"])
    assert table.columns == {"image": ["a.png", "b.png"], "label": ["cat", "dog"]}
    assert table.lines == [3, 4] and list(table.lookup("label", ["dog", "cat"])) == [1, 0]


SPLITS = ["train"] * 4 + ["val", "val", "test", "test"]


@pytest.fixture
def image_list(tmp_path):
    """A folder of 8 images and the rows of a `tsv:` list of them (two classes, 3 splits)."""
    for i in range(8):
        (tmp_path / f"{i}.png").write_bytes(_png(RGB))
    return tmp_path, [f"{i}.png\t{'cat' if i % 2 else 'dog'}\t{SPLITS[i]}" for i in range(8)]


def _write_list(root, rows):
    (root / "list.tsv").write_text("image\tlabel\tsplit\n" + "\n".join(rows) + "\n")
    return f"tsv:{root / 'list.tsv'}"


def test_cli_names_the_bad_line_of_a_label_file(capsys, image_list, tmp_path):
    root, rows = image_list
    rows[6] = rows[6].replace("dog", "bird")
    line = cli_error(capsys, "run", "classification", "--data", _write_list(root, rows),
                     "--workdir", str(tmp_path / "w"))
    assert "list.tsv:8: unknown class 'bird'" in line and "known: cat, dog" in line
    rows[6] = rows[6].replace("bird", "cat").replace("test", "tset")
    line = cli_error(capsys, "run", "classification", "--data", _write_list(root, rows),
                     "--workdir", str(tmp_path / "w"))
    assert "unknown split 'tset' (did you mean 'test'?)" in line


def test_cli_names_a_broken_image_and_an_empty_split(capsys, image_list, tmp_path):
    root, rows = image_list
    (root / "3.png").write_bytes(_png(RGB)[:200])
    line = cli_error(capsys, "run", "classification", "--data", _write_list(root, rows),
                     "--workdir", str(tmp_path / "w"))
    assert f"{root / '3.png'}: unreadable image" in line
    (root / "3.png").write_bytes(_png(RGB))
    line = cli_error(capsys, "run", "classification", "--data",
                     _write_list(root, [r.replace("test", "val") for r in rows]),
                     "--workdir", str(tmp_path / "w"))
    assert "has an empty test split" in line
    assert not (tmp_path / "w").exists()  # refused before anything was written


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size=0 is out of range: it must be >= 1"),
    ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is out of range: it must be > 0"),
    ("optimizer.lr=0", "optimizer.lr=0.0 is out of range: it must be > 0"),
    ("optimizer.momentum=1.5", "optimizer.momentum=1.5 is out of range: it must be in [0, 1]"),
    ("optimizer.lr=nan", "optimizer.lr=nan is out of range"),
    ("train.max_bad_steps=0", "train.max_bad_steps=0 is out of range"),
])
def test_cli_refuses_config_values_out_of_range(capsys, tmp_path, override, message):
    line = cli_error(capsys, "run", "classification", "--set", override, "--workdir", str(tmp_path))
    assert message in line and f"--set {override.split('=')[0]}=" in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("record, message", [
    ({"format": 2, "task": "spirals", "config": {}}, "holds a 'spirals' run, not 'classification'"),
    ({"format": 1, "task": "classification", "config": {}}, "written by an older zoo (run format 1"),
    ({"format": 99, "task": "classification", "config": {}}, "written by a newer zoo"),
    (["not", "a", "record"], "not a zoo run record"),
])
@pytest.mark.parametrize("command", ["run", "eval"])
def test_cli_refuses_a_workdir_it_cannot_resume(capsys, tmp_path, record, message, command):
    (tmp_path / "run.json").write_text(json.dumps(record))
    line = cli_error(capsys, command, "classification", "--workdir", str(tmp_path))
    assert message in line and "--workdir" in line
    assert json.loads((tmp_path / "run.json").read_text()) == record  # nothing lost
