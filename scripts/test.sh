#!/usr/bin/env bash
# Set up and run the whole test suite twice: on the embedded store, then over the MongoDB wire
# protocol against the stand-in (scripts/mongo-standin.sh). Extra arguments go to both pytest runs.
# TEST_TIERS=embedded (or wire) runs one tier only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
scripts/install-debian-tools.sh
scripts/setup-node.sh
scripts/services.sh
scripts/mongo-standin.sh --setup
tiers="${TEST_TIERS:-embedded wire}"
logs=$(mktemp -d)
standin_pid=""
cleanup() {
  [ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null && wait "$standin_pid" 2>/dev/null
  rm -rf "$logs"
}
trap cleanup EXIT

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run_tier() {  # name, then environment assignments for pytest
  local name=$1; shift
  echo "=== tests on the $name store ===" >&2
  set +e
  env -u MONGO_URI -u MONGODB_URI "$@" .venv/bin/python -m pytest -rsxXf "${pytest_args[@]}" 2>&1 | tee "$logs/$name"
  local status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests on the $name store: treating that as a failure" >&2
    status=1
  fi
  statuses+=("$status")
  summaries+=("$name: $(grep -E '(passed|failed|error|skipped).* in [0-9.]+s' "$logs/$name" | tail -1 | tr -d '=' | xargs)")
}

pytest_args=("$@")
statuses=()
summaries=()
for tier in $tiers; do
  case "$tier" in
    embedded) run_tier embedded ;;
    wire)
      port=$(free_port)
      scripts/mongo-standin.sh --port "$port" --engine memory > "$logs/standin.log" 2>&1 &
      standin_pid=$!
      for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
      run_tier wire "MONGO_URI=mongodb://127.0.0.1:$port/crm_test?directConnection=true"
      kill "$standin_pid" 2>/dev/null; wait "$standin_pid" 2>/dev/null || true
      standin_pid=""
      ;;
    *) echo "unknown tier $tier (embedded, wire)" >&2; exit 2 ;;
  esac
done

echo "=== summary ===" >&2
printf '%s\n' "${summaries[@]}"
# one closing line for both runs
.venv/bin/python - "$logs" $tiers <<'PY'
import re, sys
totals = {"passed": 0, "failed": 0}
for name in sys.argv[2:]:
    lines = [l for l in open(f"{sys.argv[1]}/{name}") if re.search(r" in [0-9.]+s", l)]
    for count, word in re.findall(r"(\d+) (passed|failed|errors?)", lines[-1] if lines else ""):
        totals["passed" if word == "passed" else "failed"] += int(count)
print(f"total: {totals['passed']} passed, {totals['failed']} failed")
PY
for status in "${statuses[@]}"; do
  [ "$status" -eq 0 ] || exit "$status"
done
