#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, in under 8 minutes, from the repo root,
#   1. installs zoo with the `.[gpu]` extra (or, with no network, from wheels carried in .whl/),
#   2. runs the tests that need a device (pytest -m device),
#   3. times training of LeNet, ResNet-14 (and ResNet-50 where the classification task has
#      it) in bfloat16 and float32 and the CRNN, against PyTorch CUDA eager and
#      torch.compile, and writes benchmarks/results-gpu.md with each zoo row's fraction
#      of the chip's peak (benchmarks/device_benchmarks.py).
# Outputs (results-gpu.md and the logs) are copied under $OUT when it is set.
#
#   benchmarks/device_check.sh                 the check
#   benchmarks/device_check.sh --dry-run       what it would do; runs only the CPU-safe parts
#   benchmarks/device_check.sh --fetch-wheels  (on a machine with pip's network) fills .whl/
#                                              with what a machine without one needs
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=${DEVICE_CHECK_SECONDS:-460}   # the whole check; each step gets what is left
PYTHON=${PYTHON:-python3}
RESULTS=benchmarks/results-gpu.md
LOGS=${TMPDIR:-/tmp}/zoo-device-check
# zoo's dependencies that the GPU image lacks (or pins differently), at the versions the
# CPU suite runs, with their own missing dependencies; jax with CUDA is the image's own.
CARRIED=(array-record==0.8.6 mlxtend==0.25.0 tensorboardx==2.6.5
         pooch==1.9.0 platformdirs editdistance==0.8.1 num2words==0.5.14
         zstandard==0.25.0 pycocotools==2.0.11 flax==0.12.8 optax==0.2.8
         orbax-checkpoint==0.12.8 setuptools==84.2.1)  # setuptools: builds zoo itself there
PURE_SOURCE=(docopt==0.6.2)  # no wheel published: built here, pure Python, so it runs there

mode=${1:-check}
case "$mode" in
  check | --dry-run | --fetch-wheels) ;;
  *) echo "usage: $0 [--dry-run | --fetch-wheels]" >&2; exit 2 ;;
esac

log() { printf '[device_check %3ds] %s\n' "$SECONDS" "$*"; }
left() { echo $((BUDGET - SECONDS)); }
dry() { [[ "$mode" == --dry-run ]]; }
run() {  # run "$@", or only show it in a dry run
  if dry; then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

if [[ "$mode" == --fetch-wheels ]]; then
  mkdir -p .whl
  for platform in 2_28 2_27 2_17; do platforms+=(--platform "manylinux_${platform}_x86_64"); done
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl "${CARRIED[@]}"
  "$PYTHON" -m pip wheel -q --no-deps -w .whl "${PURE_SOURCE[@]}"
  du -sh .whl
  exit 0
fi

mkdir -p "$LOGS"
log "1/3 environment"
if [[ -d .whl ]] && compgen -G ".whl/*.whl" > /dev/null; then
  # No network on the machine: the image's jax (with CUDA) and these wheels.
  run "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$LOGS/site" .whl/*.whl
  export PYTHONPATH="$LOGS/site${PYTHONPATH:+:$PYTHONPATH}"
  run "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation -e .
else
  run "$PYTHON" -m pip install -q -e '.[gpu,test,bench]'
fi
if ! dry; then
  "$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())" | tee "$LOGS/devices.txt"
  backend=$("$PYTHON" -c "import jax; print(jax.default_backend())")
  if [[ "$backend" == cpu ]]; then
    echo "device_check: JAX sees no GPU; install jax with CUDA (pip install -e '.[gpu]')" >&2
    exit 1
  fi
fi

log "2/3 tests that need a device ($(left) s left)"
tests_status=0
if dry; then
  # On the CPU the device tests are collected and skipped: the markers and imports work.
  "$PYTHON" -m pytest -m device -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -1
else
  timeout 150 "$PYTHON" -m pytest -m device -q -p no:cacheprovider 2>&1 \
    | tee "$LOGS/tests.log" || tests_status=$?
fi

log "3/3 training throughput ($(left) s left)"
if dry; then
  "$PYTHON" -m benchmarks.device_benchmarks --dry-run
else
  budget=$(( $(left) - 40 ))  # the report, the peak measurement and the copy after it
  "$PYTHON" -m benchmarks.device_benchmarks --budget "$budget" --out "$RESULTS" 2>&1 \
    | tee "$LOGS/benchmarks.log" || echo "device_check: the benchmarks failed (see the log)" >&2
fi

if [[ -n "${OUT:-}" ]] && ! dry; then
  cp "$LOGS"/*.log "$LOGS/devices.txt" "$OUT"/
  [[ -f "$RESULTS" ]] && cp "$RESULTS" "$OUT"/
fi
log "done in ${SECONDS} s (tests exit status ${tests_status})"
exit "$tests_status"
