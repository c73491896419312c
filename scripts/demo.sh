#!/usr/bin/env bash
# Set up .venv (only python3 needed), start two emulated Outreach accounts on 127.0.0.1,
# and move the first one's phone numbers into the second with `meltano run`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

export CRMPHONES_SOURCE_PORT="${CRMPHONES_SOURCE_PORT:-8765}"
export CRMPHONES_DESTINATION_PORT="${CRMPHONES_DESTINATION_PORT:-8766}"
export CRMPHONES_SOURCE_TOKEN=demo-source-token
export CRMPHONES_DESTINATION_TOKEN=demo-destination-token
records="${CRMPHONES_DEMO_RECORDS:-1000}"
parents=$(( records / 2 ))

crmphones-emulator outreach --port "$CRMPHONES_SOURCE_PORT" --records "$records" \
  --parents "$parents" --seed 1 --token "$CRMPHONES_SOURCE_TOKEN" &
source_pid=$!
crmphones-emulator outreach --port "$CRMPHONES_DESTINATION_PORT" --records 0 \
  --parents "$parents" --seed 1 --token "$CRMPHONES_DESTINATION_TOKEN" &
destination_pid=$!
trap 'kill $source_pid $destination_pid 2>/dev/null || true' EXIT
python - <<'PY'
import os, time, httpx
for port in (os.environ["CRMPHONES_SOURCE_PORT"], os.environ["CRMPHONES_DESTINATION_PORT"]):
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/_emulator/health").raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        raise SystemExit(f"the emulator on port {port} did not start")
PY

rm -rf .crmphones/demo.duckdb .meltano/run
meltano install
echo "== first run: every valid number is created in the destination"
meltano run --state-id-suffix demo tap-crmphones target-crmphones
echo "== second run, full refresh: the same input writes nothing"
meltano run --state-id-suffix demo --full-refresh tap-crmphones target-crmphones

python - <<'PY'
import os, duckdb, httpx
state = httpx.get(f"http://127.0.0.1:{os.environ['CRMPHONES_DESTINATION_PORT']}/_emulator/state").json()
print(f"\nDestination account now holds {len(state['phoneNumbers'])} phone numbers.")
con = duckdb.connect(".crmphones/demo.duckdb", read_only=True)
print("Runs recorded in .crmphones/demo.duckdb:")
for row in con.execute("SELECT received, created, updated, unchanged, merged, rejected, "
                       "filtered FROM runs ORDER BY started_at").fetchall():
    print("  received=%d created=%d updated=%d unchanged=%d merged=%d rejected=%d "
          "filtered=%d" % row)
for number, (run_id,) in enumerate(con.execute(
        "SELECT run_id FROM runs ORDER BY started_at").fetchall(), start=1):
    print(f"Top reject reasons, run {number}:")
    for reason, n in con.execute("SELECT reason, count(*) FROM rejects WHERE run_id = ? "
                                 "GROUP BY reason ORDER BY 2 DESC, 1 LIMIT 5",
                                 [run_id]).fetchall():
        print(f"  {n:5d}  {reason}")
PY
