#!/usr/bin/env bash
# Issue 7's GPU figures in one run, each stage writing its JSON under $OUT as soon as it ends
# (so a run cut short still returns what it finished), all output also in $OUT/run.log (six files
# in all: the device tool returns at most eight). Run from the repository root on a machine
# with a CUDA build of torch (the engine needs only torch, numpy, h5py, safetensors, pillow, tqdm):
#
#   OUT=gpu_out bash benchmarks/gpu_check.sh               # step, ttq, sample, step_more: about 6-8 minutes (estimate)
#   OUT=gpu_out STAGES="smoke tests" bash benchmarks/gpu_check.sh  # a second call: the CUDA smoke checks and tests
#   OUT=/tmp/dry DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh   # a CPU dry run of the script itself
#
# Stages (the issue's proof, in order):
#   step    training-step time of the reference configuration (FNO width 256, 4 layers, 16 modes,
#           100 points, batch 100): compiled tf32, and compiled tf32 replayed as CUDA graphs, against
#           eager fp32 in the same run (target: <= 4.8 ms, a third of the official code's 14.4 ms);
#           host_ms_median beside each says whether the host bounds it
#   ttq     seconds of training to the foundation's Quadratic quality bar (target <= 60 s), and the
#           seconds to sample 1000 curves at that quality (target <= 1.3 s), default network and
#           the reference one
#   sample  seconds to draw 1000 curves per sampler against Euler-Maruyama 1000 steps
#   step_more  the other step variants (eager tf32 and bf16, compiled bf16) against eager fp32: last,
#           so a run cut short by the device's time limit has the figures the targets need already
#   smoke   benchmarks/cuda_smoke.py: every network trained in fp32/tf32/bf16 without a host wait in the step,
#           every sampler and restoration task on the device against the CPU (about a minute, no compiler)
#   tests   the suite's tests that touch CUDA (-k "cuda or gpu", with HDM_TEST_COMPILE=1 for the CUDA-graph one);
#           the compile tests on the CPU belong to a CPU session (HDM_TEST_COMPILE=1 pytest -k compil: ~4 min)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
DEVICE=${DEVICE:-cuda}
STAGES=${STAGES:-step ttq sample step_more}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

if [ "${QUICK:-0}" = 1 ]; then  # tiny sizes: checks that every stage runs, measures nothing
  STEP_ARGS=(--width 8 --modes 4 --layers 1 --batch-size 8 --train-steps 3 --warmup-steps 1 --readout-every 2)
  STEP_VARIANTS=eager_fp32,eager_tf32
  STEP_MORE_VARIANTS=eager_fp32,eager_bf16
  TTQ_ARGS=(--budgets 20 --num-samples 100 --sampler-steps 5)
  TTQ_REF_ARGS=(--budgets 20 --num-samples 100 --sampler-steps 5 --width 8 --modes 4 --layers 1)
  SAMPLE_ARGS=(--width 8 --modes 4 --layers 1 --train-steps 2 --warmup-steps 0 --num-samples 20 --baseline-steps 10
               --samplers ddim:5,dpm2m:5)
  TEST_FILES=(tests/test_dct.py)
  TEST_SELECT=dct
else
  STEP_ARGS=(--train-steps 100 --warmup-steps 20 --readout-every 20)
  STEP_VARIANTS=eager_fp32,compiled_tf32,compiled_tf32_cudagraphs
  STEP_MORE_VARIANTS=eager_fp32,eager_tf32,eager_bf16,compiled_bf16
  TTQ_ARGS=(--budgets 100,250,500,1000,2000 --readout-every 50)
  TTQ_REF_ARGS=(--budgets 100,250,500,1000 --readout-every 50 --width 256 --modes 16 --layers 4)
  SAMPLE_ARGS=(--width 32 --train-steps 5 --warmup-steps 2
               --samplers ddim:25,exponential:10,exponential:30,dpm2m:10,dpm2m:20,dpm2m_sde:25,dpm2m_sde:50)
  TEST_FILES=(tests/test_precision.py tests/test_bench.py tests/test_dct.py tests/test_image_models.py
              tests/test_distributed.py tests/test_training.py)
  TEST_SELECT="cuda or gpu"
fi

stage() {  # name, then the command; a failing stage is reported and the next one runs
  local name=$1; shift
  echo "== $name: $*"
  local t0=$SECONDS
  "$@"
  echo "== $name: exit $? after $((SECONDS - t0)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
$PY -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__,
"cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)'

for s in $STAGES; do
  case $s in
    step) stage step $PY -m engine.cli bench --device "$DEVICE" --sections training "${STEP_ARGS[@]}" \
            --train-variants "$STEP_VARIANTS" --json "$OUT/step_time.json" ;;
    step_more) stage step_more $PY -m engine.cli bench --device "$DEVICE" --sections training "${STEP_ARGS[@]}" \
                 --train-variants "$STEP_MORE_VARIANTS" --json "$OUT/step_time_more.json" ;;
    ttq) stage ttq $PY benchmarks/time_to_quality.py --device "$DEVICE" "${TTQ_ARGS[@]}" --json "$OUT/ttq.json"
         stage ttq_reference $PY benchmarks/time_to_quality.py --device "$DEVICE" "${TTQ_REF_ARGS[@]}" \
           --json "$OUT/ttq_reference.json" ;;
    sample) stage sample $PY -m engine.cli bench --device "$DEVICE" --sections sampling "${SAMPLE_ARGS[@]}" \
              --json "$OUT/sampling.json" ;;
    smoke) stage smoke $PY benchmarks/cuda_smoke.py --device "$DEVICE" ;;
    tests) HDM_TEST_COMPILE=1 stage tests $PY -m pytest -q -p no:cacheprovider -rs "${TEST_FILES[@]}" \
             -k "$TEST_SELECT" ;;
    *) echo "unknown stage $s (choose from step ttq sample step_more smoke tests)" >&2; exit 2 ;;
  esac
done
