#!/bin/bash
# gpu_validate.sh: every GPU check of docs/gpu-validation.md in one run, for a lent GPU machine
# whose time is short. Logs go to $OUT (default out/gpu): summary.txt, tests.log, bench.log,
# kernels.json, ab.log, e2e.log, ncu_kernels.txt, sanitizer.log (the device tool returns at most
# 8 files; the ncu CSVs stay in NCUDIR, default /tmp/ncu, and are summed into summary.txt).
# Steps run in order of importance, each under `timeout`; a step that would end past DEADLINE
# seconds (default 450) is skipped and says so.
#
#   BIN=build/gpu tools/gpu_validate.sh          # binaries built by:
#   make BUILD=build/gpu CI=1 build/gpu/sqakd build/gpu/sqakd_cuda_tests
#
# tools/gpu_pack.sh builds the binaries and fills .gpu/: libs.tar.xz, the Debian libraries they
# link that the GPU machine lacks (Criterion, OpenBLAS, ...; main/ first on LD_LIBRARY_PATH,
# extra/ only where the system has none), and the end-to-end inputs teacher.safetensors
# (smallcnn, Fashion-MNIST) and the Fashion-MNIST t10k IDX files. It prints the carry list.
#
# Sections (SECTIONS, comma-separated; seconds on the H200 of 2026-11-26 in brackets, estimates
# with ~). They run in this order: tests, kernels, ab (launch grids), ratio, ab (the rest), step,
# torch, e2e, oom, weight, ncu, ncukernels, sanitizer.
#   tests [42; +33 with FIND_TESTS=1; + the lab's tests]  kernels [37]  ab [~40 for the lab's grid variants;
#   ~60 more with build/gpu-base (BASE=<rev> tools/gpu_pack.sh: kernels and step), +12 with
#   build/gpu-klrows (KLROWS=1), +12 with build/gpu-ieee carried]
#   ratio [~80 with the graph runs]  step [~100 with the CUDA-graph runs]
#   torch [60; ~40 more for the kernels against PyTorch's]  e2e [~8]  oom [1]  weight [13]  ncu [~25]  ncukernels [not run yet]  sanitizer [~60]
# The kernel lab (kernels/lab: the variants that lost, cuDNN's backend API and the stride / flat
# launch geometries) runs when $BIN/lab carries its binaries (tools/gpu_pack.sh builds them):
# its validation in tests, its timing (lab_bench grid, lab_bench conv) in ab.
# Variables: KSIZES (1M,16M,64M,256M), KJSON (1), CONVS ("heuristic:1 find:0": SQAKD_CONV_ALGO:
# SQAKD_CONV_DETERMINISTIC pairs), PRECS ("fp32 fp16 bf16"), CONVS_VGG8, PRECS_VGG8 ("fp32 bf16"),
# AB_SIZES (16M,256M: section ab's kernel runs), REPS (3), TORCH_MODELS ("resnet20 vgg8"), TORCH_TRAIN (1), NCU_CONVS (heuristic:1),
# NCU_LAUNCHES_PER_STEP (400: an upper bound; ncu_summary.py counts whole steps itself), SAN (tool:filter list), BIN_AB (build/gpu-ieee).
set -u
BIN=${BIN:-build/gpu}
OUT=${OUT:-out/gpu}
DEADLINE=${DEADLINE:-450}
SECTIONS=${SECTIONS:-tests,kernels,ab,step,ratio,torch,e2e,oom,weight,ncu,ncukernels,sanitizer}
on() { case ",$SECTIONS," in *",$1,"*) return 0 ;; esac; return 1; }
mkdir -p "$OUT"
S="$OUT/summary.txt"
T0=$(date +%s)
say() { echo "$*" | tee -a "$S"; }
left() { echo $((DEADLINE - ($(date +%s) - T0))); }
# sqakd reads no environment variable: this wrapper (written into OUT) turns the SQAKD_* prefixes
# this script's steps use for readable labels (SQAKD_CUDA_GRAPH, SQAKD_STAGE, SQAKD_TF32,
# SQAKD_CONV_ALGO=heuristic|find, SQAKD_CONV_DETERMINISTIC, SQAKD_HOST_PROFILE) into --backend-opt
# for the subcommands that take it; SQ_BIN names the executable (default $BIN/sqakd).
SQ="$OUT/sqakd_opt.sh"
cat >"$SQ" <<'WRAP'
#!/usr/bin/env bash
bin=${SQ_BIN:?}
opt="graph=${SQAKD_CUDA_GRAPH:-1},stage=${SQAKD_STAGE:-1},tf32=${SQAKD_TF32:-1},conv-algo=${SQAKD_CONV_ALGO:-heuristic},deterministic=${SQAKD_CONV_DETERMINISTIC:-1},host-profile=${SQAKD_HOST_PROFILE:-0}"
case "$1 $2" in
  "bench step"*) shift 2; exec "$bin" bench step "$@" --backend-opt "$opt" ;;
  train\ *|distill\ *|eval\ *) sub=$1; shift; exec "$bin" "$sub" "$@" --backend-opt "$opt" ;;
  *) exec "$bin" "$@" ;;
esac
WRAP
chmod +x "$SQ"
export SQ_BIN="${SQ_BIN:-$BIN/sqakd}"
# step NAME TIMEOUT LOG CMD...: runs CMD under timeout when it fits, appends to LOG, records rc
step() {
    local name=$1 to=$2 log=$3; shift 3
    if [ "$(left)" -lt "$to" ]; then
        local t=$(left); [ "$t" -lt 15 ] && { say "SKIP  $name (deadline)"; return 0; }
        to=$t
    fi
    echo "===== $name: $*" >>"$log"
    local s=$(date +%s)
    timeout -k 5 "$to" "$@" >>"$log" 2>&1
    local rc=$?
    say "$(printf '%-5s %-58s rc=%-3s %4ss' "$([ $rc = 0 ] && echo ok || echo FAIL)" "$name" $rc $(($(date +%s) - s)))"
    return $rc
}

# min / max % of peak per kernel (and quantizer / K) over the rows of >= 16M elements of a log
kernel_summary() {
    awk '/^(fakequant|kl)/ && / of peak/ {
        key = $1 " " $2 (($3 == "act" || $3 == "weight") ? " " $3 : "")
        for (i = 1; i <= NF; i++) { if ($(i+1) == "elems") sz = $i; if ($(i+1) == "of") pc = $i }
        m = sz + 0; if (sz ~ /M$/ && m >= 16) { sub(/%/, "", pc); pc += 0
            if (!(key in lo) || pc < lo[key]) lo[key] = pc; if (!(key in hi) || pc > hi[key]) hi[key] = pc } }
        END { for (k in lo) printf "  %-28s %5.1f%% .. %5.1f%% of peak (>= 16M)\n", k, lo[k], hi[k] }' "$1" | sort
}

say "date: $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$S"

# ---- libraries
export LD_LIBRARY_PATH=
if [ -f .gpu/libs.tar.xz ]; then
    mkdir -p /tmp/gl && tar -C /tmp/gl -xJf .gpu/libs.tar.xz
    LD_LIBRARY_PATH=/tmp/gl/main
fi
for lib in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcudart.so.13; do
    if [ ! -e /usr/local/cuda/lib64/$lib ] && ! ldconfig -p | grep -q "$lib "; then
        f=$(find /usr /opt -xdev -name "$lib" 2>/dev/null | head -1)
        [ -n "$f" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$f")"
    fi
done
[ -d /tmp/gl/extra ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/tmp/gl/extra"
export LD_LIBRARY_PATH
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$BIN/sqakd_cuda_tests" | grep -E 'not found|cudnn|cublas|cudart' | tee -a "$S"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
say "compute-sanitizer: ${CS:-none}; python3: $(python3 -c 'import torch; print(torch.__version__, torch.backends.cudnn.version())' 2>&1 | tail -1)"
"$BIN/sqakd" info 2>&1 | head -20 >>"$OUT/bench.log"

# ---- 1. CUDA vs CPU (and the convolution and step suites with benchmarked, any-determinism
#         cuDNN algorithms)
TL="$OUT/tests.log"
if on tests; then
    step "sqakd_cuda_tests (all suites)" 150 "$TL" "$BIN/sqakd_cuda_tests" --verbose --jobs 8
    grep -E '^\[(FAIL|SKIP)|Synthesis' "$TL" | tail -8 | tee -a "$S"
    # the suite above ran with the defaults (steps recorded as CUDA graphs); the step suite
    # once more on eager steps
    SQAKD_TEST_BACKEND_OPT=graph=0 step "cuda_step/* with graph=0 (eager)" 60 "$TL" "$BIN/sqakd_cuda_tests" --jobs 8 --filter 'cuda_step/*'
    grep -E '^\[(FAIL|SKIP)|Synthesis' "$TL" | tail -2 | tee -a "$S"
    # the kernel lab's validation: the stride / flat launch geometries against the shipped one,
    # cuDNN's backend API against the legacy calls (kernels/lab)
    if [ -x "$BIN/lab/lab_tests" ]; then
        step "lab_tests (kernels/lab)" 90 "$TL" "$BIN/lab/lab_tests" --verbose --jobs 8
        grep -E '^\[(FAIL|SKIP)|Synthesis|cuDNN backend API' "$TL" | tail -4 | tee -a "$S"
    fi
    if [ "${FIND_TESTS:-0}" = 1 ]; then
        SQAKD_TEST_BACKEND_OPT=conv-algo=find,deterministic=0 step "cuda_step/* with conv-algo=find, deterministic=0" 60 "$TL" "$BIN/sqakd_cuda_tests" --jobs 8 --filter 'cuda_step/*'
        grep -E '^\[(FAIL|SKIP)|Synthesis' "$TL" | tail -3 | tee -a "$S"
    fi
fi

# From here on a run without SQAKD_CUDA_GRAPH is eager, as in runs 1 - 4: the product's default
# (since run 5) records the step as a CUDA graph, and the runs that measure it say
# SQAKD_CUDA_GRAPH=1.
export SQAKD_CUDA_GRAPH=${SQAKD_CUDA_GRAPH:-0}

# ---- 2. kernel bandwidth
BL="$OUT/bench.log"
if on kernels; then
    step "bench kernels act ${KSIZES:=1M,16M,64M,256M}" 90 "$BL" "$BIN/sqakd" bench kernels --device cuda --sizes $KSIZES --min-time 0.1
    [ "${KJSON:-1}" = 1 ] && step "bench kernels act json" 60 "$OUT/kernels.json" "$BIN/sqakd" bench kernels --device cuda --sizes 16M,256M --min-time 0.1 --json
    kernel_summary "$BL" | tee -a "$S"
fi
# A/B: the streaming kernels' launch geometries (fake-quant, KL): stride and flat (the lab's)
# against auto (the shipped one), on the same kernels, alternated within one run of the lab
if on ab && [ -x "$BIN/lab/lab_bench" ]; then
    AL="$OUT/ab.log"
    step "lab_bench grid ${AB_SIZES:-16M,256M}" 60 "$AL" "$BIN/lab/lab_bench" grid --sizes ${AB_SIZES:-16M,256M} --bits 4 --min-time 0.1
    grep -E '^(fakequant|kl)' "$AL" | tail -n 60 | sed 's/^/  [lab grid] /' >>"$S"
fi
# ---- 3. the issue's step ratio: ours and PyTorch eager (defaults) alternated REPS times on the
#         same GPU, before the other A/B runs and the step survey (device time is short)
if on ratio; then
    for i in $(seq 1 ${REPS:-3}); do
        step "ratio $i: ours resnet20 b256 eager" 40 "$BL" "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 200 --warmup 20
        grep -E '^SQAKD ' "$BL" | tail -n 1 | sed "s/^/  [ratio $i, eager] /" >>"$S"
        SQAKD_CUDA_GRAPH=1 step "ratio $i: ours resnet20 b256 SQAKD_CUDA_GRAPH=1 (default)" 40 "$BL" "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 200 --warmup 20
        grep -E '^SQAKD ' "$BL" | tail -n 1 | sed "s/^/  [ratio $i, CUDA graph (default)] /" >>"$S"
        step "ratio $i: torch resnet20 b256" 90 "$BL" python3 tools/bench_torch.py --device cuda --mode sqakd --model resnet20 --batch 256 --steps 50 --warmup 10
        grep -E '^torch ' "$BL" | tail -n 1 | sed "s/^/  [ratio $i] /" >>"$S"
    done
fi
# A/B: the kernels of an older revision (tools/gpu_pack.sh with BASE=<rev>), same sizes, same GPU
if on ab && [ -x build/gpu-base/sqakd ]; then
    AL="$OUT/ab.log"
    rev=$(cat build/gpu-base/REVISION 2>/dev/null || echo base)
    for who in base new; do
        if [ $who = base ]; then b=build/gpu-base; label="base $rev"; else b=$BIN; label=new; fi
        step "bench kernels 16M,256M, $label" 60 "$AL" "$b/sqakd" bench kernels --device cuda --sizes ${AB_SIZES:-16M,256M} --bits 4 --min-time 0.1
        # the rows of this run only: the log's last "=====" section
        awk '/^=====/ {n++} n == N' N="$(grep -c '^=====' "$AL")" "$AL" >"$OUT/ab_last.tmp"
        kernel_summary "$OUT/ab_last.tmp" | sed "s/^/  [$label] /" | tee -a "$S"
        rm -f "$OUT/ab_last.tmp"
    done
fi
# A/B of the eager step against the older revision, alternated twice (since 7e26dbb: fused
# BN/add/activation kernels, one gradient memset per backward, the conv bias kernel, float4
# BatchNorm kernels, the KL rewrite, the compute stream)
if on ab && [ -x build/gpu-base/sqakd ]; then
    AL="$OUT/ab.log"
    rev=$(cat build/gpu-base/REVISION 2>/dev/null || echo base)
    for i in 1 2; do
        for who in base new; do
            if [ $who = base ]; then b=build/gpu-base; label="base $rev"; else b=$BIN; label=$who; fi
            step "bench step resnet20 b256 $i, $label" 40 "$AL" env SQ_BIN="$b/sqakd" "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 200 --warmup 20
            grep -E '^SQAKD ' "$AL" | tail -n 1 | sed "s/^/  [$label] /" | tee -a "$S"
        done
    done
fi
# the legacy cuDNN calls against the backend API (the lab's), alternated per shape and direction:
# host time per call and time per call
if on ab && [ -x "$BIN/lab/lab_bench" ]; then
    AL="$OUT/ab.log"
    step "lab_bench conv resnet20 shapes b256" 60 "$AL" "$BIN/lab/lab_bench" conv --batch 256 --iters 50
    grep -E '^[0-9]+x.*(legacy|backend)|handed back' "$AL" | tail -n 37 | sed 's/^/  [lab conv] /' >>"$S"
fi
# A/B: K = 1000 through the wide KL kernel, the old split (-DSQ_KL_ROWS_MAX_K=512, KLROWS=1 gpu_pack.sh)
if on ab && [ -x build/gpu-klrows/sqakd ]; then
    AL="$OUT/ab.log"
    step "bench kernels 16M,256M, KL rows up to K = 512" 60 "$AL" build/gpu-klrows/sqakd bench kernels --device cuda --sizes ${AB_SIZES:-16M,256M} --bits 4 --min-time 0.1
    awk '/^=====/ {n++} n == N' N="$(grep -c '^=====' "$AL")" "$AL" >"$OUT/ab_last.tmp"
    kernel_summary "$OUT/ab_last.tmp" | grep kl_ | sed 's/^/  [KL rows to 512] /' | tee -a "$S"
    rm -f "$OUT/ab_last.tmp"
fi
# A/B: the same kernels built with -DSQ_QM_IEEE_DIV (per-element IEEE division), if carried
if on ab && [ -x "${BIN_AB:-build/gpu-ieee}/sqakd" ]; then
    AL="$OUT/ab.log"
    step "bench kernels act 16M,256M, -DSQ_QM_IEEE_DIV build" 60 "$AL" "${BIN_AB:-build/gpu-ieee}/sqakd" bench kernels --device cuda --sizes 16M,256M --min-time 0.1
    kernel_summary "$AL" | grep fakequant | sed 's/^/  [ieee div] /' | tee -a "$S"
fi

# ---- 3b. SQAKD step survey: models, teacher precisions, cuDNN set-ups, graphs, host profile
# cuDNN algorithm choice (kernels/cuda/cudnn.c): ALGO heuristic|find x DETERMINISTIC 1|0
CONVS=${CONVS:-"heuristic:1 find:0"}
PRECS=${PRECS:-"fp32 fp16 bf16"}
if on step; then
    for m in resnet20 vgg8; do
        cvs=$CONVS; prs=$PRECS
        [ $m = vgg8 ] && cvs=${CONVS_VGG8:-$CONVS} && prs=${PRECS_VGG8:-fp32 bf16}
        for cv in $cvs; do
            for p in $prs; do
                SQAKD_CONV_ALGO=${cv%%:*} SQAKD_CONV_DETERMINISTIC=${cv#*:} step "bench step $m b256 teacher $p conv $cv" 40 "$BL" \
                    "$SQ" bench step --device cuda --model $m --batch 256 --steps 200 --warmup 20 --teacher-precision $p
                grep -E '^SQAKD ' "$BL" | tail -n 1 | sed "s/^/  [conv $cv] /" >>"$S"
            done
        done
    done
    # the step body recorded once as a CUDA graph and replayed (host/train/loop.c, step_run)
    for mp in resnet20:fp32 resnet20:bf16 vgg8:fp32; do
        SQAKD_CUDA_GRAPH=1 step "bench step ${mp%%:*} b256 teacher ${mp#*:} SQAKD_CUDA_GRAPH=1" 40 "$BL" \
            "$SQ" bench step --device cuda --model ${mp%%:*} --batch 256 --steps 200 --warmup 20 --teacher-precision ${mp#*:}
        grep -E '^SQAKD ' "$BL" | tail -n 1 | sed "s/^/  [CUDA graph] /" >>"$S"
    done
    # with the host cost gone, the step is its kernel time: which convolution set-up makes that
    # shortest (TF32 tensor-op kernels need cuDNN's NCHW<->NHWC transposes, about 12 % of run 2's
    # kernel time; SQAKD_TF32=0 keeps FP32 kernels on NCHW; find:0 times the algorithms)
    for env in "SQAKD_TF32=0" "SQAKD_CONV_ALGO=find SQAKD_CONV_DETERMINISTIC=0"; do
        step "bench step resnet20 b256 SQAKD_CUDA_GRAPH=1 $env" 40 "$BL" \
            env SQAKD_CUDA_GRAPH=1 $env "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 200 --warmup 20
        grep -E '^SQAKD ' "$BL" | tail -n 1 | sed "s/^/  [CUDA graph, $env] /" >>"$S"
    done
    SQAKD_STAGE=0 step "bench step resnet20 b256 fp32 SQAKD_STAGE=0" 40 "$BL" "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 200 --warmup 20
    grep -E '^SQAKD ' "$BL" | tail -n 1 | sed "s/^/  [SQAKD_STAGE=0] /" >>"$S"
    step "bench step resnet20 b256 --fp (CE, SGD)" 40 "$BL" "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 200 --warmup 20 --fp
    grep -E '^full-precision ' "$BL" | tail -n 1 >>"$S"
    # host time inside the cuDNN calls (SQAKD_HOST_PROFILE=1; 220 steps: 20 warm-up + 200)
    SQAKD_HOST_PROFILE=1 step "bench step resnet20 b256 fp32 SQAKD_HOST_PROFILE=1" 40 "$BL" "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 200 --warmup 20
    grep -E '^(SQAKD |host profile)' "$BL" | tail -n 5 | sed "s/^/  [host profile] /" >>"$S"
    # launch-bound or GPU-bound? images/s against batch size
    for b in 64 1024; do
        step "bench step resnet20 b$b fp32" 40 "$BL" "$SQ" bench step --device cuda --model resnet20 --batch $b --steps 100 --warmup 10
        grep -E '^SQAKD ' "$BL" | tail -n 1 >>"$S"
    done
fi
if on torch; then
    for m in ${TORCH_MODELS-resnet20 vgg8}; do
        for b in "" --cudnn-benchmark; do
            step "torch sqakd $m b256 $b" 90 "$BL" python3 tools/bench_torch.py --device cuda --mode sqakd --model $m --batch 256 --steps 50 --warmup 10 $b
        done
    done
    [ "${TORCH_TRAIN:-1}" = 1 ] && step "torch train resnet20 b256" 60 "$BL" python3 tools/bench_torch.py --device cuda --mode train --model resnet20 --batch 256 --steps 50 --warmup 10
    grep -E '^torch ' "$BL" | tee -a "$S"
    # the fake-quant and KL kernels against PyTorch eager's, alternated (speedup = torch / ours)
    step "kernels vs torch 16M,256M" 90 "$BL" env DEVICE=cuda PY=python3 REPS=2 MIN_TIME=0.1 SQAKD_BIN="$BIN/sqakd" bash tools/bench_kernels_ratio.sh
    awk '/^===== kernels vs torch/ {on = 1; next} /^=====/ {on = 0} on && /x$/' "$BL" | sed 's/^/  [vs torch] /' | tee -a "$S"
fi

# ---- 4. end to end: distill on the GPU and on the CPU, same seed
EL="$OUT/e2e.log"
if on e2e && [ -f .gpu/teacher.safetensors ]; then
    D="idx:.gpu/t10k-images-idx3-ubyte.gz,.gpu/t10k-labels-idx1-ubyte.gz"
    for dv in cuda cpu; do
        rm -rf /tmp/e2e_$dv
        step "distill smallcnn ewgs W4A4 1 epoch --device $dv" 60 "$EL" "$SQ" distill --teacher .gpu/teacher.safetensors \
            --data "$D" --holdout 0.2 --quantizer ewgs --wbits 4 --abits 4 --epochs 1 --batch 128 --seed 1 \
            --device $dv --threads 16 --log-every 10 --quiet --out /tmp/e2e_$dv
        tail -n 2 /tmp/e2e_$dv/metrics.jsonl >>"$S" 2>/dev/null
    done
    # the same run with the step recorded as a CUDA graph: the metrics must be identical
    rm -rf /tmp/e2e_graph
    SQAKD_CUDA_GRAPH=1 step "distill smallcnn ewgs W4A4 1 epoch --device cuda SQAKD_CUDA_GRAPH=1" 60 "$EL" "$SQ" distill \
        --teacher .gpu/teacher.safetensors --data "$D" --holdout 0.2 --quantizer ewgs --wbits 4 --abits 4 --epochs 1 \
        --batch 128 --seed 1 --device cuda --threads 16 --log-every 10 --quiet --out /tmp/e2e_graph
    tail -n 1 /tmp/e2e_graph/metrics.jsonl >>"$S" 2>/dev/null
    if [ ! -s /tmp/e2e_cuda/metrics.jsonl ] || [ ! -s /tmp/e2e_graph/metrics.jsonl ]; then
        say "SKIP  CUDA graph distill comparison (a distill run is missing)"
    elif cmp -s <(sed 's/"\(img_per_s\|train_seconds\|elapsed_seconds\)":[^,}]*//g' /tmp/e2e_cuda/metrics.jsonl) \
              <(sed 's/"\(img_per_s\|train_seconds\|elapsed_seconds\)":[^,}]*//g' /tmp/e2e_graph/metrics.jsonl); then
        say "ok    CUDA graph distill metrics identical to the eager run's (timings aside)"
    else
        say "FAIL  CUDA graph distill metrics differ from the eager run's"
    fi
    rm -rf /tmp/e2e_fp16
    step "distill smallcnn teacher fp16 --device cuda" 60 "$EL" "$SQ" distill --teacher .gpu/teacher.safetensors \
        --data "$D" --holdout 0.2 --quantizer ewgs --wbits 4 --abits 4 --epochs 1 --batch 128 --seed 1 \
        --device cuda --teacher-precision fp16 --log-every 10 --quiet --out /tmp/e2e_fp16
    tail -n 1 /tmp/e2e_fp16/metrics.jsonl >>"$S" 2>/dev/null
fi

# ---- 5. one-line out-of-memory message
if on oom; then
    step "bench step b65536 must fail with one line" 40 "$EL" bash -c "! '$BIN/sqakd' bench step --device cuda --batch 65536 --steps 1"
    tail -n 2 "$EL" | tee -a "$S"
fi

# ---- 6. weight-role bandwidth (DoReFa/PACT weights read x twice)
on weight && step "bench kernels weight 16M,256M" 40 "$BL" "$BIN/sqakd" bench kernels --device cuda --sizes 16M,256M --min-time 0.1 --role weight

# ---- 7. where the step's GPU time goes: Nsight Compute kernel durations over 2 steps
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
NCUDIR=${NCUDIR:-/tmp/ncu}   # the CSVs stay on the machine (summed into summary.txt): 8 files come back at most
if on ncu && [ -n "${NCU:-}" ]; then
    mkdir -p "$NCUDIR"
    for cv in ${NCU_CONVS:-heuristic:1}; do
        # 3 warm-up + 8 timed steps; skip the set-up and about 4 steps, then profile about 3
        # steps' launches; ncu_summary.py "auto" keeps the whole steps between KL launches
        # find mode: cudnnFind's trial launches come first, so skip further into a longer run
        per=${NCU_LAUNCHES_PER_STEP:-400} nst=8 skip=5
        case $cv in find*) nst=30 skip=20 ;; esac
        SQAKD_CONV_ALGO=${cv%%:*} SQAKD_CONV_DETERMINISTIC=${cv#*:} step "ncu bench step resnet20 b256 conv $cv" 120 "$NCUDIR/ncu_${cv%%:*}${cv#*:}.csv" \
            "$NCU" --clock-control none --metrics gpu__time_duration.sum --launch-skip $((per * skip)) --launch-count $((per * 3)) --csv \
            "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps $nst --warmup 3
        python3 tools/ncu_summary.py "$NCUDIR/ncu_${cv%%:*}${cv#*:}.csv" auto 2>&1 | head -n 24 | sed "s/^/  [conv $cv] /" | tee -a "$S"
    done
fi

# ---- 7b. why a kernel misses the bandwidth goal: Nsight Compute sections (speed of light,
#          occupancy, warp stall reasons, memory workload) of the KL kernels (K = 10, 100, 1000)
#          and of the PACT fake-quant forward / backward, at 16M elements
if on ncukernels && [ -n "${NCU:-}" ]; then
    step "ncu sections: KL kernels at 16M" 120 "$OUT/ncu_kernels.txt" "$NCU" --clock-control none \
        --kernel-name regex:'kl_(tile|rows|wide)_kernel' --launch-count 6 \
        --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis \
        "$BIN/sqakd" bench kernels --device cuda --sizes 16M --bits 4 --min-time 0
    step "ncu sections: pact fake-quant at 16M" 120 "$OUT/ncu_kernels.txt" "$NCU" --clock-control none \
        --kernel-name regex:'fq_(fwd|bwd)_kernel' --launch-skip 4 --launch-count 4 \
        --section SpeedOfLight --section Occupancy --section WarpStateStats \
        "$BIN/sqakd" bench kernels --device cuda --sizes 16M --bits 4 --min-time 0
    # the BatchNorm kernels of a resnet20 step (float4 rewrite of 2026-11-26): the first
    # training step's 80 BN launches after set-up, 2 of each of the four kernels from stage 1
    step "ncu sections: BN kernels of a resnet20 step" 120 "$OUT/ncu_kernels.txt" "$NCU" --clock-control none \
        --kernel-name regex:'bn_(stats|train_apply|bwd_stats|bwd_apply)_kernel' --launch-skip 40 --launch-count 8 \
        --section SpeedOfLight --section Occupancy \
        "$SQ" bench step --device cuda --model resnet20 --batch 256 --steps 1 --warmup 1
    grep -E "^  [a-z_]+.*kernel|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Stall" "$OUT/ncu_kernels.txt" | head -n 90 | tee -a "$S"
fi

# ---- 8. compute-sanitizer (last: slowest)
SL="$OUT/sanitizer.log"
SAN=${SAN:-"memcheck:backend_ops/cuda_fakequant racecheck:backend_ops/cuda_fakequant racecheck:backend_ops/cuda_losses racecheck:backend_ops/cuda_batchnorm memcheck:backend_ops/cuda_losses memcheck:backend_ops/cuda_batchnorm synccheck:backend_ops/cuda_fakequant memcheck:cuda_stage/* memcheck:backend_ops/cuda_optim memcheck:backend_ops/cuda_pool memcheck:backend_ops/cuda_structural memcheck:backend_ops/cuda_conv memcheck:backend_ops/cuda_half memcheck:backend_ops/cuda_record memcheck:cuda_teacher/* memcheck:cuda_step/resnet20_pact* memcheck:cuda_graph/* memcheck:cuda_fused/* memcheck:backend_ops/cuda_fused racecheck:backend_ops/cuda_fused memcheck:cuda_conv_be/*"}
if on sanitizer && [ -n "${CS:-}" ]; then
    for tf in $SAN; do
        tool=${tf%%:*}; filt=${tf#*:}
        step "sanitizer $tool $filt" 60 "$SL" "$CS" --target-processes all --tool $tool "$BIN/sqakd_cuda_tests" --jobs 1 --filter "$filt"
        grep 'ERROR SUMMARY' "$SL" | tail -n 1 | tee -a "$S"
    done
fi
say "total $(($(date +%s) - T0))s"
echo "================ summary"
cat "$S"
