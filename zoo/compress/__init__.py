"""`zoo compress`: prune, quantize and encode a trained model into a compressed workdir.

An application above the harness, beside the hub: `pipeline.py` runs the phases (each
fine-tuning an ordinary `fit`), `report.py` measures sizes, accuracy and latency. The
arithmetic (masks, quantizers, the model.zc format) lives in `zoo_hardware`.
"""
