"""`zoo import`: timm and torchvision ImageNet weights as a zoo workdir or hub entry.

Never pickle: timm's weights are read from the safetensors file it publishes on the
Hugging Face hub (`hf://timm/NAME/model.safetensors`, with `config.json` holding
`pretrained_cfg`: input size, crop, interpolation, mean/std); a torchvision `.pth`
only through `torch.load(..., weights_only=True)`, which refuses anything but tensors.
The state dict converts by name (`zoo.models.convert`); the preprocessing goes into the
task config and the 1,000 ImageNet class names into the data-set info, so the result
predicts, evaluates, fine-tunes and publishes like any trained run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import class_lists
from zoo.data.images import Preprocess
from zoo.errors import ZooError, unknown
from zoo.hub import fetch, urls
from zoo.io import weights
from zoo.io.files import sha256_file
from zoo.models.torchvision_names import to_timm

TIMM_ARCHS = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
              "resnet101": "resnet101", "vit_small_patch16_224": "vit-s16",
              "vit_base_patch16_224": "vit-b16", "mobilenetv3_large_100": "mobilenetv3-large"}
# torchvision's names are mapped to timm's (zoo.models.torchvision_names).
TORCHVISION_ARCHS = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
                     "resnet101": "resnet101", "mobilenet_v3_large": "mobilenetv3-large",
                     "vit_b_16": "vit-b16"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# torchvision's transforms, by the file name's start (download.pytorch.org/models/...):
# (resize, crop, interpolation); every other file resizes to 256 and crops 224, bilinear.
TORCHVISION_FILES = {"resnet50-11ad3fa6": (232, 224, "bilinear"),
                     "resnet101-cd907fc2": (232, 224, "bilinear"),
                     "mobilenet_v3_large-5c1a4163": (232, 224, "bilinear"),
                     "vit_b_16_swag-9ac1b537": (384, 384, "bicubic"),
                     "vit_b_16_lc_swag-4e70ced5": (224, 224, "bicubic")}
TORCHVISION_V1 = (256, 224, "bilinear")


@dataclass(frozen=True)
class Upstream:
    """Weights read from an upstream file, with what a zoo run needs to use them."""

    source: str  # e.g. "timm:resnet50.a1_in1k"
    model: str  # the zoo model name
    state: dict[str, np.ndarray]  # upstream layout, upstream names
    image_size: int
    preprocess: Preprocess
    classes: tuple[str, ...]
    sha256: str  # of the weights file as read
    license: str


def read(source: str, *, file: Path | None = None, directory: Path | None = None) -> Upstream:
    """Reads `timm:NAME` or `torchvision:NAME` weights (offline from `file`/`directory`).

    Raises:
      ZooError: an unknown source or architecture, a missing or unreadable file, no
        network where a download is needed, or torch missing for a `.pth`.
    """
    kind, _, name = source.partition(":")
    if kind == "timm" and name:
        return _read_timm(source, name, file, directory)
    if kind == "torchvision" and name:
        if file is None:
            raise ZooError(f"{source}: pass the downloaded .pth with --file PATH "
                           f"(torchvision's weights are pickles: zoo never fetches them)")
        return _read_torchvision(source, name, file)
    raise ZooError(f"{source!r}: expected timm:ARCH.TAG (e.g. timm:resnet50.a1_in1k) or "
                   f"torchvision:ARCH (e.g. torchvision:resnet50 --file resnet50.pth)")


def _read_timm(source: str, name: str, file: Path | None, directory: Path | None) -> Upstream:
    arch = name.partition(".")[0]
    if arch not in TIMM_ARCHS:
        raise unknown("timm architecture", arch, TIMM_ARCHS)
    if directory is not None:
        file = file or directory / "model.safetensors"
        config_path = directory / "config.json"
    elif file is None:
        file, config_path = (_download(name, f) for f in ("model.safetensors", "config.json"))
    else:
        config_path = file.with_name("config.json")
    if not Path(file).is_file():
        raise ZooError(f"{file}: no such weights file")
    config = _read_json(config_path) if Path(config_path).is_file() else None
    if config is None:
        print(f"zoo: warning: no config.json beside {file}: assuming 224x224 inputs, "
              f"crop 0.875, bicubic, ImageNet mean/std", file=sys.stderr)
        config = {"pretrained_cfg": {"input_size": [3, 224, 224], "crop_pct": 0.875,
                                     "interpolation": "bicubic", "mean": IMAGENET_MEAN,
                                     "std": IMAGENET_STD}}
    if config.get("architecture", arch) != arch:
        raise ZooError(f"{config_path}: architecture {config['architecture']!r}, not {arch!r}")
    cfg = config["pretrained_cfg"]
    state, _ = weights.read_safetensors(Path(file))
    classes = tuple(config.get("label_names") or ())
    return Upstream(source, TIMM_ARCHS[arch], state, int(cfg["input_size"][-1]),
                    Preprocess(crop_pct=float(cfg.get("crop_pct", 0.875)),
                               interpolation=cfg.get("interpolation", "bicubic"),
                               mean=tuple(cfg["mean"]), std=tuple(cfg["std"])),
                    classes or _default_classes(state, source),
                    sha256_file(Path(file)), cfg.get("license", "see the upstream card"))


def _read_torchvision(source: str, name: str, file: Path) -> Upstream:
    if name not in TORCHVISION_ARCHS:
        raise unknown("torchvision architecture", name, TORCHVISION_ARCHS)
    try:
        import torch
    except ImportError:
        raise ZooError("reading a torchvision .pth needs PyTorch: pip install torch "
                       "(CPU wheels: --index-url https://download.pytorch.org/whl/cpu)") from None
    if not file.is_file():
        raise ZooError(f"{file}: no such weights file")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, ...  # noqa: BLE001
        raise ZooError(f"{file}: refused or unreadable by torch's weights-only loader "
                       f"({str(e).splitlines()[0]})") from None
    model = TORCHVISION_ARCHS[name]
    state = to_timm(model, {k: v.numpy() for k, v in loaded.items() if hasattr(v, "numpy")})
    resize, crop, interpolation = next((v for k, v in TORCHVISION_FILES.items()
                                        if file.name.startswith(k)), TORCHVISION_V1)
    size = crop
    if "pos_embed" in state:  # a ViT's input size is its position embeddings' grid
        size = round((state["pos_embed"].shape[1] - 1) ** 0.5) * 16
    preprocess = Preprocess(crop_pct=crop / resize, interpolation=interpolation,
                            mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return Upstream(source, model, state, size, preprocess, _default_classes(state, source),
                    sha256_file(file), "BSD-3-Clause")


def _default_classes(state: dict[str, np.ndarray], source: str) -> tuple[str, ...]:
    """ImageNet's names for a 1,000-way head, else numbers."""
    head = next((v for k, v in state.items() if k in ("fc.bias", "head.bias",
                                                     "classifier.bias")), None)
    if head is None:
        raise ZooError(f"{source}: no classifier head (fc, head or classifier) in the weights")
    n = head.shape[0]
    return class_lists.get("imagenet-1k").names if n == 1000 else tuple(str(i) for i in range(n))


def _download(name: str, filename: str) -> Path:
    """`hf://timm/NAME/FILE` into the cache, once (no pinned hash: the caller records it)."""
    from zoo.hub import cache

    dest = cache.root() / "upstream" / "timm" / name / filename
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        address = urls.from_hf(f"hf://timm/{name}/{filename}")
        fetch.download([address], fetch.Target(dest, None, None, f"timm/{name} ({filename})"))
    return dest


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: not a readable timm config.json ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("pretrained_cfg"), dict):
        raise ZooError(f"{path}: not a timm config.json (no pretrained_cfg)")
    return data


# -- what an import writes ------------------------------------------------------------

FINE_TUNE_OPTIMIZER = {"name": "adamw", "lr": 1e-4, "weight_decay": 0.05, "schedule": "cosine",
                       "warmup_epochs": 1.0}


def task_config(up: Upstream) -> dict[str, Any]:
    """The classification config that uses these weights as they were trained: the
    model, input size, preprocessing, and fine-tuning defaults (AdamW, lr 1e-4)."""
    from dataclasses import asdict

    from zoo.config import from_dict, to_dict
    from zoo.registry import get_task

    config_cls = get_task("classification").Config
    values = to_dict(config_cls())
    values.update(model=up.model, data="imagenet-1k", image_size=up.image_size, channels=3,
                  preprocess=asdict(up.preprocess), augment="flip_affine")
    values["optimizer"].update(FINE_TUNE_OPTIMIZER)
    values["train"].update(epochs=10, batch_size=32, eval_batch_size=64)
    return to_dict(from_dict(config_cls, values))


def data_info(up: Upstream) -> dict[str, Any]:
    """The `Dataset.info` of ImageNet as the weights saw it."""
    return {"classes": list(up.classes), "input_shape": [up.image_size, up.image_size, 3],
            "data": "imagenet-1k", "dark_background": False}


def upstream_card(up: Upstream, name: str, tag: str, *, size: int | None):
    """A card whose mirror is timm's own file on the Hugging Face hub, converted on load
    (`layout: timm`): nothing is re-hosted, the sha256 is timm's."""
    from zoo.hub.card import Card

    return Card(task="classification", model=up.model, tag=tag, file="model.safetensors",
                urls=(f"hf://timm/{name}/model.safetensors",), size=size, sha256=up.sha256,
                layout="timm", config=task_config(up), info=data_info(up),
                params=_params(up), license=up.license,
                source=f"{up.source}: timm's published weights, converted on load by zoo")


def write_hub_entry(up: Upstream, hub_dir: Path, tag: str, *, force: bool = False):
    """Converts the weights into `hub_dir/classification/MODEL-TAG.safetensors` and adds
    their card to `hub_dir/index.json`."""
    import os
    import time

    from zoo.hub import index
    from zoo.hub.card import Card, check_name
    from zoo.models.convert import from_torch_layout

    file = f"{up.model}-{check_name('tag', tag)}.safetensors"
    dest = Path(hub_dir) / "classification" / file
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    weights.save(tmp, from_torch_layout(up.model, up.state), {"zoo.card": f"classification/{file}"})
    card = Card(task="classification", model=up.model, tag=tag, file=file,
                urls=(f"classification/{file}",), size=tmp.stat().st_size,
                sha256=sha256_file(tmp), config=task_config(up), info=data_info(up),
                params=_params(up), license=up.license,
                source=f"zoo import {up.source} (upstream sha256 {up.sha256})",
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    try:
        index.add(Path(hub_dir), card, force=force)
    except ZooError:
        tmp.unlink()
        raise
    os.replace(tmp, dest)
    return card


def _params(up: Upstream) -> int:
    """Trainable parameters: every tensor but batch-norm statistics."""
    return sum(int(v.size) for k, v in up.state.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
