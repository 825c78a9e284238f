"""Data helpers for task plugins: splits and batches, sources, caches, images, data
sets, text.

Every name a task needs is importable from here (`from zoo.data import load_image,
split_indices`); each lives in a submodule, imported on first use, so `import zoo.data`
stays cheap. The submodules say more: sources (a split as random access: arrays in
memory, or files read on demand by the input workers), loader (the seeded order of
batches, seeded splits), workers and pipeline (input worker processes), image_files
(image folders, the ImageNet layout), coco and voc (detection and segmentation layouts,
streamed), masks (image/mask pairs), jsonl (JSON-lines records), hf (Hugging Face
save_to_disk folders and parquet files), records and packed (`zoo data pack`,
`packed:DIR`), identity (what makes a data set the same one on resume), cache (.npz
arrays made once), images (files, letterbox, model inputs), host_augment (random-resized
crop and flip in the workers), augment (on-device flips and warps), image_sets (labelled
image data sets: mnist-sample, mnist, digits, folder:PATH, imagenet:ROOT, tsv:FILE,
hf:PATH), mnist, scenes (multi-digit scenes with masks and boxes), draw (overlays,
boxes), tables (TSV files), text (tokenizer, vocabulary), faces (generated cartoon
people with attributes), scoring (yes/no thresholds chosen on a split).
"""

import importlib

_EXPORTS = {
    "loader": ("holdout_sizes", "split_indices", "steps_per_epoch", "three_splits",
               "train_batches", "eval_batches"),
    "sources": ("Source", "ArraySource", "Example", "as_source", "with_arrays",
                "files_fingerprint", "dataset_fingerprint"),
    "image_files": ("ImageFiles",),
    "host_augment": ("random_resized_crop", "crop_flip"),
    "coco": ("BoxedImages", "CocoIndex", "read_coco"),
    "masks": ("MaskedImages", "read_mask"),
    "records": ("PackedSource",),
    "jsonl": ("JsonLines",),
    "cache": ("cached_arrays",),
    "images": ("IMAGE_SUFFIXES", "as_image", "class_folders", "folder_files", "image_folder",
               "image_info", "letterbox", "letterboxed_input", "letterboxed_inputs",
               "load_centre_square", "load_image", "match_background", "output_paths", "resize",
               "to_unit_range", "unletterbox"),
    "image_sets": ("IMAGE_SETS", "load_image_set"),
    "mnist": ("mnist_full", "mnist_sample", "sklearn_digits"),
    "scenes": ("SceneConfig", "load_scenes"),
    "draw": ("IGNORE", "draw_boxes", "label_image", "overlay_mask", "save_label_png"),
    "tables": ("read_tsv",),
    "augment": ("FlipAffine", "flip_and_affine", "random_affine", "random_flip"),
    "faces": ("ATTRIBUTES", "FaceConfig", "load_faces"),
    "scoring": ("Goal", "best_threshold"),
    "text": ("BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "Vocabulary", "detokenize", "tokenize"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"zoo.data.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
