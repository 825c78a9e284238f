"""`zoo devices` and `zoo profile`: what this machine has, and what a task's steps cost."""

from __future__ import annotations

import json

from rich import box
from rich.table import Table

from zoo.cli.common import (add_config_arguments, add_device, add_runtime_arguments,
                            build_config, console, no_extra, start_runtime)


def add_commands(sub, common) -> None:
    dev = sub.add_parser("devices", parents=[common],
                         help="JAX backends, devices, their memory, process index/count")
    add_runtime_arguments(dev, mesh=False)
    dev.add_argument("--json", action="store_true", help="print the inventory as JSON")
    dev.set_defaults(handler=_devices)

    prof = sub.add_parser(
        "profile", parents=[common], help="FLOPs, bytes, memory and roofline times of a task",
        description="Compile TASK's train and eval steps for one device, read XLA's cost "
                    "and memory analysis, bound the step time on catalogue chips with the "
                    "roofline model, and time the steps here.")
    prof.add_argument("task", help="task name (see `zoo list`)")
    add_config_arguments(prof)
    prof.add_argument("--hardware", metavar="NAMES",
                      help="comma-separated chips (default all): v100, a100, h100, h200, "
                           "tpu-v4, tpu-v5e, tpu-v5p")
    prof.add_argument("--steps", type=int, default=10, help="steps per timing window")
    add_device(prof)
    prof.add_argument("--json", action="store_true", help="print the report as JSON")
    prof.set_defaults(handler=_profile, num_processes=None, process_id=None, coordinator=None)


def _devices(args, rest) -> int:
    no_extra(rest)
    start_runtime(args)
    from zoo_hardware import inventory

    info = inventory.describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    out = console()
    backends = ", ".join(f"{name} ({n})" for name, n in info["backends"].items())
    out.print(f"backends: {backends}; default {info['default_backend']}")
    out.print(f"process {info['process_index']} of {info['process_count']}; "
              f"{info['local_device_count']} local of {info['device_count']} device(s)")
    table = Table("id", "platform", "kind", "process", "memory")
    for d in info["devices"]:
        memory = "-" if d["memory_bytes"] is None else _si(d["memory_bytes"], "B")
        if d["platform"] == "cpu" and d["memory_bytes"] is not None:
            memory += " (host RAM, shared)"
        table.add_row(str(d["id"]), d["platform"], d["kind"], str(d["process"]), memory)
    out.print(table)
    return 0


def _profile(args, rest) -> int:
    no_extra(rest)
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    config = build_config(task_cls, args)
    start_runtime(args)
    from zoo.harness.profiling import profile_task

    report = profile_task(task_cls(config), hardware=args.hardware, device=args.device,
                          steps=args.steps)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_profile(report)
    return 0


def _print_profile(r: dict) -> None:
    out = console()
    mem = r["memory_bytes"]
    local = next(name for name in r["hardware"] if name.endswith("(here)"))
    out.print(f"{r['task']}: {r['model']} on {r['data']}, {r['dtype']}, one {r['device']} "
              f"device; compiled in {r['compile_seconds']:.1f}s ({r['cached_programs']} "
              f"program(s) from the compilation cache); {local} measured now")
    out.print(f"parameters {r['parameters']:,} ({_si(mem['parameters'], 'B')}); model state "
              f"{_si(mem['model_state'], 'B')}; optimizer state {_si(mem['optimizer_state'], 'B')}")
    steps = Table("step", "batch", "FLOPs", "FLOPs/example", "bytes", "FLOPs/byte",
                  "temporaries", "measured", f"achieved on {local}", box=box.SIMPLE_HEAD)
    for name, s in r["steps"].items():
        steps.add_row(name, str(s["batch_size"]), _si(s["flops"], ""),
                      _si(s["flops_per_example"], ""), _si(s["bytes"], "B"),
                      f"{s['intensity']:.1f}", _si(s["memory_bytes"]["temporaries"], "B"),
                      _ms(s["measured_seconds"]),
                      f"{_si(s['achieved_flops'], 'FLOP/s')} = "
                      f"{s['fraction_of_local_peak']:.0%} of peak")
    out.print(steps)
    table = Table("chip", f"peak {r['dtype']}", "bandwidth", "memory", "ridge",
                  *[f"{name} step bound" for name in r["steps"]],
                  title="roofline: least step time = max(FLOPs / peak, bytes / bandwidth)",
                  box=box.SIMPLE_HEAD)
    for chip, spec in r["hardware"].items():
        bounds = [_bound(s["roofline"][chip]) for s in r["steps"].values()]
        table.add_row(chip, _si(spec["peak_flops"], "FLOP/s") if spec["peak_flops"] else "n/a",
                      _si(spec["bandwidth"], "B/s"), _si(spec["memory"], "B"),
                      f"{spec['ridge_intensity']:.0f}" if spec["ridge_intensity"] else "-",
                      *bounds)
    out.print(table)


def _bound(row: dict | None) -> str:
    if row is None:
        return "no such dtype"
    text = f"{_ms(row['seconds'])} ({row['limit']})"
    if "fraction_of_roofline" in row:
        text += f"; measured: {row['fraction_of_roofline']:.0%} of it"
    return text


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-4 else f"{seconds * 1e6:.3g} µs"


def _si(value: float, unit: str) -> str:
    """1.72e9 -> '1.72 G' + unit."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()
