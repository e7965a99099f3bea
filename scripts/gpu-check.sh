#!/usr/bin/env bash
# CUDA checks behind the GPU figures in docs/performance.md. Run from the repository root on a CUDA machine with the
# package installed and the quick suite's synthetic data in data/synthetic (`asymfusion prepare synthetic`):
#     OUT=gpu-check bash scripts/gpu-check.sh
# 1. bench of the quick suite's target models: bf16 autocast, channels_last, stacked vs per-modality loop;
# 2. two-epoch bf16 + channels_last training of quick-asymfusion through torchrun (NCCL, 1 process), then evaluate;
# 3. the bench at the paper's NYUDv2 shapes (ResNet-101 + RefineNet, 480x640, batch 2 and 6);
# 4. torch.compile of the quick target models (stacked execution, batch 16);
# 5. the paper-suite rehearsal on CUDA with each recipe's AMP and channels_last (docs/paper-suite.md), in a clone of
#    this repository under $OUT so that nothing of the workspace changes; its results, dvc.lock and per-run training
#    histories (step times) come back under $OUT/rehearsal.
# Each step has its own time limit and its log in $OUT; a failed step does not stop the others.
# STEPS picks a subset, e.g. STEPS="bench-quick bench-paper" (default: every step).
set -u
OUT=${OUT:?set OUT to an output folder}
STEPS=${STEPS:-"bench-quick train-ddp evaluate bench-paper bench-compile rehearsal"}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$OUT/gpu.txt"

selected() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  selected "$name" || { echo "$name skipped" >> "$OUT/steps.txt"; return; }
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?; echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$OUT/steps.txt"
}

step bench-quick 120 asymfusion bench --suite quick --methods quick-asymfusion quick-msbn --device cuda --amp bf16 \
  --channels-last --no-data --repeats 30 --out "$OUT/bench-quick"
selected train-ddp && python3 - "$OUT" <<'PY'
import sys, yaml
out = sys.argv[1]
params = yaml.safe_load(open("params.yaml"))
params["paths"]["checkpoints"] = f"{out}/checkpoints"
exp = params["experiments"]["quick-asymfusion"]
exp["train"].update(epochs=2, device="cuda", amp="bf16", channels_last=True, threads=None)
exp["data"]["num_workers"] = 2
yaml.safe_dump(params, open(f"{out}/params-gpu.yaml", "w"), sort_keys=False)
PY
step train-ddp 120 torchrun --standalone --nproc_per_node=1 -m asymfusion.benchmark.cli --params "$OUT/params-gpu.yaml" \
  train --no-progress quick-asymfusion-s0
step evaluate 60 asymfusion --params "$OUT/params-gpu.yaml" evaluate quick-asymfusion-s0
selected evaluate && cp results/quick/metrics/quick-asymfusion-s0.json "$OUT/" 2>/dev/null
rm -rf "$OUT/checkpoints"

step bench-paper 150 asymfusion bench --suite paper --methods paper-nyudv2-asymfusion paper-nyudv2-msbn \
  --sizes 480x640 --batches 2 6 --device cuda --amp bf16 --channels-last --no-data --repeats 10 --out "$OUT/bench-paper"


step bench-compile 220 asymfusion bench --suite quick --methods quick-asymfusion quick-msbn --device cuda --amp bf16 \
  --channels-last --compile --executions stacked --batches 16 --no-data --repeats 30 --out "$OUT/bench-compile"

if selected rehearsal; then
  rm -rf "$OUT/rehearsal-repo" && git clone -q . "$OUT/rehearsal-repo"
  python3 - "$OUT/rehearsal-repo/params.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
params = yaml.safe_load(open(path))
params["rehearsal"]["device"] = "cuda"  # each recipe's own amp/channels_last apply on CUDA
yaml.safe_dump(params, open(path, "w"), sort_keys=False)
PY
fi
step rehearsal 3600 bash -c "cd '$OUT/rehearsal-repo' && asymfusion pipeline && dvc repro report-rehearsal"
if selected rehearsal; then
  mkdir -p "$OUT/rehearsal" && cp -r "$OUT/rehearsal-repo/results/rehearsal/." "$OUT/rehearsal/" 2>/dev/null
  cp "$OUT/rehearsal-repo/dvc.lock" "$OUT/rehearsal/" 2>/dev/null
  rm -rf "$OUT/rehearsal-repo"
fi
cat "$OUT/steps.txt"
