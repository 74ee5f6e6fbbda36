#!/usr/bin/env bash
# The GPU check in one command, for a CUDA machine whose python3 has a CUDA
# torch but no OpenMMLab stack and no network (the lent device machine):
# installs what travelled in .whl/ (benchmarks/README.md, "GPU check"),
# compiles mmcv's deformable attention kernel, runs gpu_check.py, then trains
# the tiny model with `tools/train.py --amp` on CUDA. Output under $OUT.
set -uo pipefail
OUT=${OUT:-work_dirs/gpu_check}
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl || exit 1
tar xzf .whl/site.tar.gz -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export TORCH_EXTENSIONS_DIR=/tmp/torch_ext MAX_JOBS=16
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch, numpy, mmcv, mmengine; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'mmcv', mmcv.__version__, 'mmengine', mmengine.__version__)" || exit 1
[ -n "${SKIP_CHECK:-}" ] || python3 benchmarks/gpu/gpu_check.py --runs "${RUNS:-10}" ${CHECK_ARGS:-} \
  --text-tokenizer .whl/minilm_tokenizer --json "$OUT/gpu_check.json" \
  2>&1 | tee "$OUT/gpu_check.log"
[ -n "${SKIP_TRAIN:-}" ] || python3 benchmarks/gpu/train_with_kernel.py \
  benchmarks/gpu/mqformer_tiny_shapes-panoptic_cuda.py --amp \
  --work-dir /tmp/train_amp 2>&1 | grep -v Warning | tee "$OUT/train_amp.log" | tail -25
