"""`zoo compress`: prune, quantize and encode a trained workdir (see zoo.compress.pipeline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.cli.common import (add_device, add_pretrained, add_workdir, check_output, console,
                            no_extra, restored_model, workdir_of)

EXAMPLES = """examples:
  zoo compress classification --workdir runs/cls --prune 0.92 --quantize kmeans:5 \\
      --prune-layers conv1=0.25,conv2=0.7,fc2=0.75 --finetune-epochs 8 --finetune-lr 2e-3 \\
      --out runs/cls-small     Deep Compression: prune, share, encode (README recipe)
  python -m benchmarks.prune_sensitivity classification --workdir runs/cls
                           which layers can lose how many weights (for --prune-layers)
  zoo compress classification --workdir runs/cls --quantize int8     post-training int8
  zoo compress classification --pretrained --quantize int8 --out runs/cls-int8   hub weights
  zoo compress classification --workdir runs/cls --quantize binary --finetune-epochs 3
  zoo eval classification --workdir runs/cls-small                   the compressed model
"""


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser("compress", parents=[common], help="prune and quantize a trained model",
                         description="Prune, quantize and entropy-code a trained workdir into "
                                     "a compressed one that `zoo eval` and `zoo predict` load. "
                                     "Prints and writes (compression.json) per-layer sparsity, "
                                     "bits per weight, sizes on disk, accuracy and latency.",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("task", help="task name")
    add_workdir(cmd)
    add_pretrained(cmd, "compress published weights instead of a trained --workdir")
    cmd.add_argument("--out", type=Path,
                     help="output workdir (default: WORKDIR-compressed, runs/TASK-compressed)")
    cmd.add_argument("--prune", type=float, default=0.0, metavar="FRACTION",
                     help="fraction of weights to remove by magnitude, e.g. 0.92")
    cmd.add_argument("--prune-scope", choices=("global", "layer"), default="global",
                     help="rank weights across all layers (default) or within each")
    cmd.add_argument("--prune-layers", type=_pins, default=(), metavar="LAYER=FRACTION,...",
                     help="pin layers' own sparsities, e.g. conv1=0.25,conv2=0.7: the other "
                          "layers share the sparsity that keeps the total at --prune. Pin the "
                          "layers a sensitivity scan (below) shows cannot lose as much as "
                          "global ranking takes (README, Compression)")
    cmd.add_argument("--quantize", metavar="SCHEME",
                     help="int8 | int4 (weights and activations) | binary | kmeans:N (weights)")
    cmd.add_argument("--act-bits", type=int, choices=(0, 4, 8),
                     help="activation bits (0: float; default: 8/4 for int8/int4, else float)")
    cmd.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                     help="fine-tuning epochs per phase (0: one-shot, post-training)")
    cmd.add_argument("--finetune-lr", type=float, default=0.0,
                     help="peak fine-tuning learning rate (default: half the task's)")
    add_device(cmd)
    cmd.set_defaults(handler=_compress)


def _pins(text: str) -> tuple[tuple[str, float], ...]:
    """"conv1=0.25,conv2=0.7" -> (("conv1", 0.25), ("conv2", 0.7))."""
    try:
        return tuple((name.strip(), float(value)) for name, value in
                     (pair.split("=") for pair in text.split(",") if pair.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give LAYER=FRACTION pairs separated by commas, e.g. conv1=0.25,conv2=0.7")


def _compress(args, rest) -> int:
    from zoo.compress.pipeline import Plan, compress
    from zoo.compress.report import print_report
    from zoo.errors import ZooError
    from zoo_hardware.quantization import parse_scheme

    no_extra(rest)
    if args.finetune_epochs < 0:
        raise ZooError(f"--finetune-epochs {args.finetune_epochs}: must be 0 or more")
    scheme = parse_scheme(args.quantize, args.act_bits) if args.quantize else None
    plan = Plan(prune=args.prune, scope=args.prune_scope, layers=args.prune_layers, scheme=scheme,
                finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr)
    out = args.out or workdir_of(args).with_name(workdir_of(args).name + "-compressed")
    check_output(out, "--out", None if args.pretrained is not None else workdir_of(args),
                 folder=True)
    source = restored_model(args, "compresses")
    report = compress(source, out, plan, device=args.device,
                      log=lambda m: console().print(m, markup=False, highlight=False))
    print_report(report, console())
    return 0
