#!/usr/bin/env bash
# The real study of issue 8: the Fashion-MNIST MLP (learning rate, width, depth, optimizer with its own parameters,
# weight decay) tuned with ASHA on 4 parallel trials, once each with hierarchical MCTS, TPE and random sampling, on a
# control plane of its own; prints the best accuracy against the training budget spent (in epochs of 60,000 images).
# Usage: bench/AiMass.Bench.Tuning/fashion-mnist-study.sh [PORT]      (needs dataset-fashion-mnist; about 6 minutes)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
port="${1:-8479}"
data="$(mktemp -d)"
server="http://127.0.0.1:$port"
"$root/aimass" up --data-dir "$data" --port "$port" > "$data/up.log" 2>&1 &
up=$!
trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do curl -sf "$server/api/v1/health" > /dev/null && break; sleep 1; done
for sampler in hmcts tpe random; do
  "$root/aimass" --server "$server" tune "$root/examples/tuning/fashion-mnist.yaml" --sampler "$sampler" --name "fm-$sampler" > "$data/$sampler.log"
  tail -n 3 "$data/$sampler.log"
done
/usr/bin/python3 "$root/bench/AiMass.Bench.Tuning/study-budget.py" "$server" fm-hmcts fm-tpe fm-random
# Pruned trials' jobs may still be stopping (SIGTERM, then the kill grace): let them end before the server goes.
for _ in $(seq 1 60); do
  busy="$(curl -sf "$server/api/v1/jobs?state=stopping" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')"
  [[ "$busy" == 0 ]] && break
  sleep 1
done
