#!/usr/bin/env bash
# The GPU run (docs/benchmarks.md, "On a GPU"): on a machine with an NVIDIA GPU, Python with
# PyTorch (CUDA) and the driver, but no Rust toolchain and no network. benches/gpu/pack.sh
# prepares benches/gpu/payload/ on the CPU machine first.
#
#   benches/gpu/run.sh [PHASE...]      # phases: bench twins paper compare (default: all four)
#
# - bench:   `genmodels bench` for every model on each GPU backend the binary has (wgpu, and
#            cuda when built with it): training step and the trainer's loop, likelihood, naive
#            and cached sampling, at batch 32 and at $GPU_BATCH (default 256).
# - twins:   benches/reference/runner.py, genmodels on its best GPU backend against the
#            PyTorch twins on CUDA, alternating, training steps at batch 32 and $GPU_BATCH.
# - paper:   PixelCNN's `paper` preset trained for one epoch of 6,400 digits (batch 32) on the
#            best GPU backend: `genmodels train`'s images/s, to set beside flex on 2 CPU cores.
# - compare: `genmodels compare --budget full` (paper-size presets) on the GPU, for as long as
#            the time left allows, and the wall time it took.
#
# $GPU_MODELS (space-separated) narrows the bench phase's models.
# Results go to $OUT (the device runner's output folder) or ./gpu-results: JSON, Markdown
# tables and logs. Every step has a time limit; the whole stops starting new steps after
# $GPU_RUN_SECONDS (default 540), so a run fits the 10 minutes a command may take.
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
payload="$repo/benches/gpu/payload"
out="${OUT:-$repo/gpu-results}"
budget="${GPU_RUN_SECONDS:-540}"
big_batch="${GPU_BATCH:-256}"
phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(bench twins paper compare)
start=$(date +%s)
mkdir -p "$out"
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$out/run.log" >&2; }
left() { echo $(( budget - ($(date +%s) - start) )); }

# --- setup: the binaries and a Vulkan device for wgpu --------------------------------------
work="$(mktemp -d)"
if [ ! -f "$payload/genmodels.xz" ]; then
  log "no $payload/genmodels.xz: run benches/gpu/pack.sh on the build machine first"
  exit 1
fi
xz -dc "$payload/genmodels.xz" > "$work/genmodels" && chmod +x "$work/genmodels"
xz -dc "$payload/reference_export.xz" > "$work/reference_export" && chmod +x "$work/reference_export"
bin="$work/genmodels"
cp "$payload/manifest.txt" "$out/payload-manifest.txt" 2>/dev/null
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  grep -m1 "model name" /proc/cpuinfo; nproc
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1
} > "$out/machine.txt"
log "machine: $(tr '\n' ' ' < "$out/machine.txt")"
# wgpu needs the Vulkan loader and the NVIDIA driver's Vulkan driver (ICD). A driver-only image
# may lack the loader (the payload brings Debian's) or the ICD file (written here, pointing at
# the driver's libGLX_nvidia.so.0, which carries its Vulkan driver).
# (grep without -q: with pipefail, -q's early exit fails ldconfig on SIGPIPE.)
if ! ldconfig -p | grep 'libvulkan\.so\.1 ' >/dev/null && [ -f "$payload/libvulkan.so.1" ]; then
  mkdir -p "$work/lib" && cp "$payload/libvulkan.so.1" "$work/lib/"
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "using the payload's Vulkan loader"
fi
if ! ls /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json >/dev/null 2>&1; then
  nvidia_vk="$(ldconfig -p | awk '/libGLX_nvidia\.so\.0 /{print $NF; exit}')"
  if [ -n "$nvidia_vk" ]; then
    cat > "$work/nvidia_icd.json" <<ICD
{ "file_format_version": "1.0.0", "ICD": { "library_path": "$nvidia_vk", "api_version": "1.3.0" } }
ICD
    export VK_ICD_FILENAMES="$work/nvidia_icd.json"
    log "wrote a Vulkan ICD file for $nvidia_vk"
  else
    log "no NVIDIA Vulkan driver (libGLX_nvidia.so.0) found: wgpu will not find the GPU"
  fi
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work}"
# A number from a JSON result file (a bench call's array, or a run's metrics.json).
cat > "$work/field.py" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
if isinstance(data, list):
    data = data[0] if data else None
print("skipped" if data is None else f"{data[sys.argv[2]]:.1f}")
PY
field() { python3 "$work/field.py" "$1" "$2" 2>/dev/null || echo "no $2 in $1"; }
export GENMODELS_NO_PROGRESS=1

# The GPU backends this binary has and can start (a typed error names what failed).
backends=()
for backend in wgpu cuda; do
  if timeout 120 "$bin" bench --model vae --backend "$backend" --op train_step --steps 1 \
      --warm-up 0 --json > "$out/probe-$backend.json" 2> "$out/probe-$backend.err"; then
    backends+=("$backend")
  fi
  log "probe $backend: $( [ -s "$out/probe-$backend.err" ] && tail -n 1 "$out/probe-$backend.err" || echo ok)"
done
if [ ${#backends[@]} -eq 0 ]; then
  log "no GPU backend could be started; see $out/probe-*.err"
  exit 1
fi
best="${GPU_BACKEND:-${backends[-1]}}"

# --- bench ---------------------------------------------------------------------------------
bench_phase() {
  local models=(${GPU_MODELS:-pixelcnn gated-pixelcnn row-lstm diagonal-bilstm vae dcgan ddpm})
  local results="$out/bench-calls.json"
  : > "$results"
  for batch in 32 "$big_batch"; do
    for backend in "${backends[@]}"; do
      for model in "${models[@]}"; do
        for op in train_step train_loop log_likelihood sample_cached sample_naive; do
          # Out of time: stop measuring, but still write the tables of what was measured.
          if [ "$(left)" -lt 30 ]; then log "bench: out of time at $model $op"; break 4; fi
          local steps=10
          case "$op" in sample_naive) steps=1 ;; sample_cached) steps=3 ;; train_loop) steps=30 ;; esac
          # Naive sampling is a network pass per pixel (784): once, at the smaller batch.
          [ "$op" = sample_naive ] && [ "$batch" != 32 ] && continue
          local limit=$(( $(left) < 120 ? $(left) : 120 ))
          # `bench --json` prints one (pretty-printed) JSON array per call.
          if timeout "$limit" "$bin" bench --model "$model" --backend "$backend" --op "$op" \
              --batch "$batch" --steps "$steps" --warm-up 1 --json > "$work/row.json" \
              2> "$work/row.err"; then
            cat "$work/row.json" >> "$results"
            log "bench $backend $model $op batch $batch: $(field "$work/row.json" images_per_second) images/s"
          else
            log "bench $backend $model $op batch $batch: failed or timed out (limit ${limit}s): $(tail -n 1 "$work/row.err")"
          fi
          cat "$work/row.err" >> "$out/bench.err"
        done
      done
    done
  done
  python3 - "$results" "$out" <<'PY'
import json, sys
# The calls' JSON arrays, one after another.
text, decoder, rows, at = open(sys.argv[1]).read(), json.JSONDecoder(), [], 0
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    array, at = decoder.raw_decode(text, at)
    rows += array
json.dump(rows, open(f"{sys.argv[2]}/bench.json", "w"), indent=2)
with open(f"{sys.argv[2]}/bench.md", "w") as f:
    f.write("| model | backend | op | batch | images/s | seconds |\n|---|---|---|---|---|---|\n")
    for r in rows:
        f.write(f"| {r['model']} | {r['backend']} | {r['op']} | {r['batch']} | "
                f"{r['images_per_second']:.2f} | {r['seconds']:.3f} |\n")
PY
}

# --- twins ---------------------------------------------------------------------------------
twins_phase() {
  for batch in 32 "$big_batch"; do
    if [ "$(left)" -lt 60 ]; then log "twins: out of time before batch $batch"; return; fi
    local check=()
    [ "$batch" != 32 ] && check=(--skip-check)
    log "twins: $best against PyTorch CUDA, training steps, batch $batch"
    timeout "$(left)" python3 "$repo/benches/reference/runner.py" "${check[@]}" \
      --backend "$best" --torch-device cuda --batch "$batch" --ops train_step \
      --models pixelcnn gated-pixelcnn row-lstm diagonal-bilstm vae dcgan ddpm \
      --steps 20 --warm-up 2 --repetitions 3 \
      --genmodels-bin "$bin" --export-bin "$work/reference_export" \
      --out "$out/twins-batch$batch.json" > "$out/twins-batch$batch.md" 2>> "$out/twins.err"
    log "twins batch $batch: exit $? ($(grep -c '^| ' "$out/twins-batch$batch.md" 2>/dev/null) table rows)"
  done
}

# --- paper ---------------------------------------------------------------------------------
paper_phase() {
  if [ "$(left)" -lt 60 ]; then log "paper: no time left"; return; fi
  log "PixelCNN paper preset, one epoch of 6,400 digits at batch 32, on $best"
  timeout "$(left)" "$bin" train pixelcnn --preset paper --epochs 1 --train-images 6400 \
    --batch-size 32 --iwae-k 1 --backend "$best" --out "$out/pixelcnn-paper" \
    > "$out/pixelcnn-paper.log" 2>&1
  local status=$?
  log "paper: exit $status, $(field "$out/pixelcnn-paper/metrics.json" train_images_per_second) training images/s"
}

# --- compare -------------------------------------------------------------------------------
compare_phase() {
  if [ "$(left)" -lt 60 ]; then log "compare: no time left"; return; fi
  log "compare --budget full on $best, for at most $(left) s"
  local began=$(date +%s)
  timeout "$(left)" "$bin" compare --budget full --retrain --backend "$best" \
    --out "$out/compare-full" > "$out/compare-full.log" 2>&1
  local status=$?
  log "compare --budget full: exit $status after $(( $(date +%s) - began )) s$( [ $status = 124 ] && echo ' (stopped by the time limit)')"
}

for phase in "${phases[@]}"; do
  case "$phase" in
    bench) bench_phase ;;
    twins) twins_phase ;;
    paper) paper_phase ;;
    compare) compare_phase ;;
    *) log "unknown phase $phase (bench, twins, paper, compare)"; exit 2 ;;
  esac
done
log "done in $(( $(date +%s) - start )) s; results in $out"
