#!/usr/bin/env bash
# Runs the whole AI Mass test suite from a clean checkout:
#   1. installs what the tests need when it is missing (Debian packages; run as root),
#   2. builds everything warning-free (warnings are errors),
#   3. starts the services the tests use (a one-node Slurm cluster),
#   4. runs every test project,
#   5. ends with one line: total: N passed, N failed, N skipped
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# --- 1. dependencies ---------------------------------------------------------------------------
# python3-onnx: onnx.checker validates the ONNX files the tests generate (run with /usr/bin/python3).
need=()
/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1 || need+=(python3-onnx)
# libopenblas0-pthread: the tensor engine's GEMM (cblas_sgemm); the tests check that the native path is used.
[[ -e /usr/lib/x86_64-linux-gnu/libopenblas.so.0 || -e /usr/lib/aarch64-linux-gnu/libopenblas.so.0 ]] || need+=(libopenblas0-pthread)
# dataset-fashion-mnist: the IDX reader is tested on the real files (the training benchmark uses them too).
[[ -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]] || need+=(dataset-fashion-mnist)
# fonts-dejavu-core: the simulator's plots (ScottPlot draws their text with a system font).
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need+=(fonts-dejavu-core)
# Slurm 22.05 and munge: the Slurm executor is tested against a real one-node cluster (scripts/slurm-test-cluster.sh).
for tool in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: need root to apt-get install ${need[*]}" >&2
  else
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
      || echo "test.sh: apt-get install ${need[*]} failed; the tests that need it will fail and say why" >&2
  fi
fi

# --- 2. build ----------------------------------------------------------------------------------
out="$root/.test-output"
rm -rf "$out"
mkdir -p "$out"
echo "test.sh: building (Release, warnings as errors)"
if ! dotnet build AiMass.slnx -c Release --nologo -v quiet -clp:ErrorsOnly -warnaserror; then
  echo "test.sh: build failed"
  echo "total: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

# --- 3. services --------------------------------------------------------------------------------
# A one-node Slurm cluster (8 CPUs, 16 GiB and 4 fake GPUs declared) in a temporary directory, stopped on exit. When it
# cannot start, the Slurm tests fail and print the reason (AIMASS_SLURM_ERROR); they never pass silently.
slurm_dir="$(mktemp -d /tmp/aimass-slurm.XXXXXX)"
stop_services() { "$root/scripts/slurm-test-cluster.sh" stop "$slurm_dir" >/dev/null 2>&1; rm -rf "$slurm_dir"; }
trap stop_services EXIT
if "$root/scripts/slurm-test-cluster.sh" start "$slurm_dir" > "$out/slurm-start.log" 2>&1; then
  export SLURM_CONF="$slurm_dir/slurm.conf"
  echo "test.sh: one-node Slurm cluster up ($SLURM_CONF)"
else
  export AIMASS_SLURM_ERROR="the test Slurm cluster did not start: $(tail -n 5 "$out/slurm-start.log" | tr '\n' ' ')"
  echo "test.sh: $AIMASS_SLURM_ERROR"
fi

# --- 4. tests ----------------------------------------------------------------------------------
passed=0 failed=0 skipped=0
for project in tests/*.Tests/*.csproj; do
  name="$(basename "$project" .csproj)"
  echo "test.sh: $name"
  dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" \
    --results-directory "$out" -- RunConfiguration.TestSessionTimeout=1500000 \
    > "$out/$name.log" 2>&1
  code=$?
  # Failed tests with their messages, then the project's summary.
  grep -E -A 12 '^\s+Failed [A-Za-z]' "$out/$name.log" | head -n 200
  grep -E '^\s*(Total tests|Passed|Failed|Skipped):' "$out/$name.log" | tr -s ' ' | paste -sd' ' -
  trx="$out/$name.trx"
  if [[ -f "$trx" ]]; then
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
    get() { echo "$counters" | grep -o "$1=\"[0-9]*\"" | grep -o '[0-9]*'; }
    p=$(get passed); f=$(get failed); e=$(get error); t=$(get timeout); a=$(get aborted); n=$(get notExecuted)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0} + ${t:-0} + ${a:-0}))
    skipped=$((skipped + ${n:-0}))
    if [[ $code -ne 0 && ${f:-0} -eq 0 && ${e:-0} -eq 0 && ${t:-0} -eq 0 && ${a:-0} -eq 0 ]]; then
      echo "test.sh: $name exited $code without a failed test; see $out/$name.log"
      tail -n 30 "$out/$name.log"
      failed=$((failed + 1))
    fi
  else
    echo "test.sh: $name produced no results (exit $code); see $out/$name.log"
    tail -n 30 "$out/$name.log"
    failed=$((failed + 1))
  fi
done

echo "total: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 && $passed -gt 0 ]]
