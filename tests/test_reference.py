"""timm and torchvision themselves as the reference (`pytest -m reference`, needs
`pip install -e '.[torch-ref]'`).

For every ImageNet family in timm's layout, and for the two torchvision names
differently (MobileNetV3-Large, ViT-B/16): the upstream model with weights drawn from a
numpy seed, and zoo's model with the same weights converted, give the same logits and
backbone feature maps on two real photos (max abs difference <= 1e-4, float32). The
same run checks the committed fixtures the default suite compares against
(`ZOO_WRITE_FIXTURES=1` rewrites them, with the photos and the upstream names and
shapes).
"""

import json
import os

import numpy as np
import pytest

import upstream

pytestmark = pytest.mark.reference


def _photos() -> np.ndarray:
    """scikit-learn's two sample photos, centre-cropped square and resized to SIZE."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = []
    for image in load_sample_images().images:
        h, w, _ = image.shape
        side = min(h, w)
        crop = image[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
        out.append(np.asarray(Image.fromarray(crop).resize((upstream.SIZE, upstream.SIZE),
                                                           Image.Resampling.BICUBIC)))
    return np.stack(out)


def _timm_outputs(timm_model, torch, x: np.ndarray, model: str):
    """timm's logits and stage feature maps (NHWC) for NHWC inputs."""
    t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        logits = timm_model(t).numpy()
        if model.startswith("vit"):
            tokens = timm_model.forward_features(t)[:, 1:].numpy()
            side = upstream.SIZE // 16
            maps = [tokens.reshape(len(x), side, side, -1)]
        elif model.startswith("resnet"):
            m = timm_model
            y = m.maxpool(m.act1(m.bn1(m.conv1(t))))
            maps = []
            for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
                y = layer(y)
                maps.append(y.numpy().transpose(0, 2, 3, 1))
        else:
            m = timm_model
            y = m.bn1(m.conv_stem(t))  # timm: BatchNormAct2d, the hard-swish inside
            maps = []
            for i, stage in enumerate(m.blocks):
                y = stage(y)
                if i in (1, 2, 4, 6):
                    maps.append(y.numpy().transpose(0, 2, 3, 1))
    return logits, upstream.summaries(maps)


def _torchvision_outputs(net, torch, x: np.ndarray, model: str):
    """torchvision's logits and the feature maps zoo's backbone returns (NHWC)."""
    t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        logits = net(t).numpy()
        if model.startswith("vit"):
            tokens = net._process_input(t)
            tokens = torch.cat([net.class_token.expand(len(x), -1, -1), tokens], dim=1)
            side = upstream.SIZE // 16
            maps = [net.encoder(tokens)[:, 1:].numpy().reshape(len(x), side, side, -1)]
        else:
            y, maps = t, []
            for i, block in enumerate(net.features):
                y = block(y)
                if i in (3, 6, 12, 16):  # the ends of timm's stages 1, 2, 4 and 6
                    maps.append(y.numpy().transpose(0, 2, 3, 1))
    return logits, upstream.summaries(maps)


def _upstream_model(case: str, torch):
    """The upstream library's model of `case` (eval mode, random init), and a label."""
    model = upstream.zoo_model(case)
    if case == model:
        timm = pytest.importorskip("timm")
        extra = {"img_size": upstream.SIZE} if model.startswith("vit") else {}
        net = timm.create_model(upstream.TIMM_NAMES[model], pretrained=False, **extra)
        label = f"{upstream.TIMM_NAMES[model]} (timm {timm.__version__}"
    else:
        torchvision = pytest.importorskip("torchvision")
        extra = {"image_size": upstream.SIZE} if model.startswith("vit") else {}
        net = getattr(torchvision.models, upstream.TORCHVISION_NAMES[model])(**extra)
        label = f"{upstream.TORCHVISION_NAMES[model]} (torchvision {torchvision.__version__}"
    return net.eval(), f"{label}, torch {torch.__version__})"


@pytest.mark.parametrize("case", upstream.CASES)
def test_zoo_matches_upstream_on_random_weights(case):
    torch = pytest.importorskip("torch")
    model = upstream.zoo_model(case)
    write = os.environ.get("ZOO_WRITE_FIXTURES") == "1"
    photos_path = upstream.FIXTURES / "photos.npz"
    if write and not photos_path.exists():
        np.savez_compressed(photos_path, images=_photos())
    net, label = _upstream_model(case, torch)
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    if write:  # one tensor a line
        rows = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items())
        (upstream.FIXTURES / f"{case}.json").write_text(
            f'{{"upstream": {json.dumps(label)},\n"shapes": {{\n{rows}\n}}}}\n')
    assert upstream.manifest(case) == shapes, "the upstream layout changed: rewrite the fixtures"
    state = upstream.random_state(shapes)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = upstream.model_inputs(upstream.photos())
    outputs = _torchvision_outputs if case != model else _timm_outputs
    logits, features = outputs(net, torch, x, model)
    if write:
        np.savez_compressed(upstream.FIXTURES / f"{case}.npz", logits=logits, **features)
    ours_logits, ours_features = upstream.zoo_outputs(case, state, x)
    assert np.abs(ours_logits - logits).max() <= upstream.TOLERANCE
    for name, value in features.items():
        assert np.abs(ours_features[name] - value).max() <= upstream.TOLERANCE, name
    committed = upstream.reference(case)
    assert np.abs(committed["logits"] - logits).max() <= 1e-5, "fixture out of date"


@pytest.mark.parametrize("case, file, size, crop_pct", [
    ("torchvision-mobilenetv3-large", "mobilenet_v3_large-5c1a4163.pth", 224, 224 / 232),
    ("torchvision-vit-b16", "vit_b_16-c867db91.pth", upstream.SIZE, 224 / 256),
])
def test_zoo_import_reads_a_torchvision_file_through_the_weights_only_loader(
        tmp_path, case, file, size, crop_pct):
    """`zoo import torchvision:NAME --file F.pth`: torch's weights-only loader, timm's
    names, the transforms of that file, and the weights the conversion check uses."""
    torch = pytest.importorskip("torch")
    from zoo.hub import importer
    from zoo.models.convert import from_torch_layout

    state = upstream.random_state(upstream.manifest(case))
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / file)
    model = upstream.zoo_model(case)
    up = importer.read(f"torchvision:{upstream.TORCHVISION_NAMES[model]}", file=tmp_path / file)
    assert (up.model, up.image_size) == (model, size)
    assert up.preprocess.crop_pct == pytest.approx(crop_pct)
    converted, expected = from_torch_layout(model, up.state), upstream.to_zoo(case, state)
    assert sorted(converted) == sorted(expected)
    assert all(np.array_equal(converted[k], v) for k, v in expected.items())
