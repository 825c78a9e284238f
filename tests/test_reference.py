"""timm itself as the reference (`pytest -m reference`, needs `pip install -e '.[torch-ref]'`).

For every ImageNet family: timm's model with weights drawn from a numpy seed, and zoo's
model with the same weights converted, give the same logits and backbone feature maps
on two real photos (max abs difference <= 1e-4, float32). The same run checks the
committed fixtures the default suite compares against (`ZOO_WRITE_FIXTURES=1` rewrites
them, with the photos and the upstream names and shapes).
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


@pytest.mark.parametrize("model", list(upstream.TIMM_NAMES))
def test_zoo_matches_timm_on_random_weights(model):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    write = os.environ.get("ZOO_WRITE_FIXTURES") == "1"
    photos_path = upstream.FIXTURES / "photos.npz"
    if write and not photos_path.exists():
        np.savez_compressed(photos_path, images=_photos())
    extra = {"img_size": upstream.SIZE} if model.startswith("vit") else {}
    timm_model = timm.create_model(upstream.TIMM_NAMES[model], pretrained=False, **extra).eval()
    shapes = {k: list(v.shape) for k, v in timm_model.state_dict().items()}
    if write:
        (upstream.FIXTURES / f"{model}.json").write_text(json.dumps(
            {"timm": f"{upstream.TIMM_NAMES[model]} (timm {timm.__version__}, "
                     f"torch {torch.__version__})", "shapes": shapes}, indent=0))
    assert upstream.manifest(model) == shapes, "timm's layout changed: rewrite the fixtures"
    state = upstream.random_state(shapes)
    timm_model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = upstream.model_inputs(upstream.photos())
    logits, features = _timm_outputs(timm_model, torch, x, model)
    if write:
        np.savez_compressed(upstream.FIXTURES / f"{model}.npz", logits=logits, **features)
    ours_logits, ours_features = upstream.zoo_outputs(model, state, x)
    assert np.abs(ours_logits - logits).max() <= upstream.TOLERANCE
    for name, value in features.items():
        assert np.abs(ours_features[name] - value).max() <= upstream.TOLERANCE, name
    committed = upstream.reference(model)
    assert np.abs(committed["logits"] - logits).max() <= 1e-5, "fixture out of date"
