#!/usr/bin/env bash
# run.sh BUILD_FUZZ SECONDS NAME...: runs each libFuzzer harness BUILD_FUZZ/bin/fuzz_NAME for
# SECONDS from its committed seed corpus tests/fuzz/corpus/NAME (read only: new inputs go to a
# scratch folder, BUILD_FUZZ/run/NAME/new), with tests/fuzz/NAME.dict when present. Prints one line
# per harness (executions, exec/s, coverage at start and end, new inputs, findings) and writes the
# same as key=value lines to BUILD_FUZZ/summary.txt. Findings (crash, leak, timeout, out-of-memory
# inputs) are kept in BUILD_FUZZ/run/NAME/findings with the log; exits 1 if any harness found one.
set -uo pipefail
out=$1 secs=$2
shift 2
run=$out/run
rm -rf "$run"
mkdir -p "$run"
# the harnesses' temporary files: a RAM-backed /dev/shm when writable (fsync is free there)
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
tmp=$(mktemp -d "$base/sqakd-fuzz-run.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
summary=$out/summary.txt
{
  echo "# sqakd fuzz summary: $(date -u +%Y-%m-%dT%H:%M:%SZ), $secs s per harness, $(clang --version | head -1)"
  echo "# one line per harness: harness seconds execs exec_per_s cov_start cov_end features_end corpus_start corpus_end new_inputs findings status"
} > "$summary.tmp"
failed=0
total_start=$SECONDS
for n in "$@"; do
  dir=$run/$n
  mkdir -p "$dir/new" "$dir/findings"
  opts=(-max_total_time="$secs" -print_final_stats=1 -close_fd_mask=3 -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$dir/findings/")
  [ -f "tests/fuzz/$n.dict" ] && opts+=(-dict="tests/fuzz/$n.dict")
  t0=$SECONDS
  # LeakSanitizer ignores the process-lifetime caches of libraries outside the project
  # (tests/lsan.supp: fontconfig's, which the report harness's figures load). A small quarantine,
  # and freed memory returned to the system, keep the resident size that of the live heap: with
  # ASan's defaults the image harness, whose inputs may decode to 200 MB (SQ_IMAGE_MAX_PIXELS x 3),
  # kept over 2 GB of freed memory and hit -rss_limit_mb in 20 - 30 s with 24 MB live
  TMPDIR=$tmp ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64:release_to_os_interval_ms=500 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$out/bin/fuzz_$n" "${opts[@]}" "$dir/new" "tests/fuzz/corpus/$n" > "$dir/log" 2>&1
  rc=$?
  el=$((SECONDS - t0))
  stat() { grep -o "stat::$1: *[0-9]*" "$dir/log" | tail -1 | grep -o '[0-9]*$'; }
  execs=$(stat number_of_executed_units)
  eps=$(stat average_exec_per_sec)
  newu=$(stat new_units_added)
  cov0=$(grep -m1 'INITED' "$dir/log" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
  last=$(grep -E '^#[0-9]+' "$dir/log" | grep 'cov:' | tail -1)
  cov1=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft1=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  corp0=$(grep -m1 'INITED' "$dir/log" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*')
  corp1=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  nfind=$(find "$dir/findings" -type f | wc -l)
  # a harness that stopped with an error but left no input (a crash in start-up) is a finding too
  [ "$rc" -ne 0 ] && [ "$nfind" -eq 0 ] && nfind=1
  status=ok
  [ "$nfind" -gt 0 ] && { status=FOUND; failed=1; }
  printf 'fuzz %-14s %4ss  %10s execs  %7s exec/s  cov %5s -> %-5s (+%s inputs)  findings: %s%s\n' \
    "$n" "$el" "${execs:-?}" "${eps:-?}" "${cov0:-?}" "${cov1:-?}" "${newu:-?}" "$nfind" \
    "$([ "$status" = FOUND ] && echo "  -> $dir/findings, log $dir/log")"
  if [ "$status" = FOUND ]; then
    grep -m3 -E 'ERROR: |runtime error|fuzz: |SUMMARY' "$dir/log" | sed 's/^/    /'
  fi
  echo "harness=$n seconds=$el execs=${execs:-0} exec_per_s=${eps:-0} cov_start=${cov0:-0}" \
       "cov_end=${cov1:-0} features_end=${ft1:-0} corpus_start=${corp0:-0} corpus_end=${corp1:-0}" \
       "new_inputs=${newu:-0} findings=$nfind status=$status" >> "$summary.tmp"
done
echo "# total $((SECONDS - total_start)) s, $([ $failed = 0 ] && echo 'no findings' || echo 'FINDINGS')" >> "$summary.tmp"
mv "$summary.tmp" "$summary"
echo "fuzz: summary in $summary"
exit $failed
