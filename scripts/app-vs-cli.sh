#!/usr/bin/env bash
# Does the app leave the CPU to the work? Times the same EfficientNet-Lite0 occlusion (16/8,
# 730 forward passes, chelsea.png) with `easel explain` and in the app under Xvfb (software
# rendering), alternating, ROUNDS times each, and prints both and their ratio.
#   scripts/app-vs-cli.sh            (ROUNDS=2 by default)
# Needs Xvfb (`apt-get install -y xvfb`).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-2}
display=${DISPLAY_NUMBER:-96}
cargo build --release --quiet
tmp=$(mktemp -d)
Xvfb ":$display" -screen 0 1600x1000x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$tmp"' EXIT
sleep 1
cli_times=()
app_times=()
for r in $(seq 1 "$rounds"); do
  ./target/release/easel explain --model assets/efficientnet-lite0/card.json --image assets/photos/chelsea.png \
    --method occlusion --sanity none --device cpu --out "$tmp/cli-$r" 2>/dev/null
  t=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['elapsed_secs'])" "$tmp/cli-$r/meta.json")
  cli_times+=("$t")
  echo "round $r: easel explain  occlusion in $t s"
  log="$tmp/app-$r.log"
  DISPLAY=":$display" XDG_DATA_HOME="$tmp/state-$r" EASEL_CACHE_DIR="$tmp/cache" ./target/release/easel gui --demo photos --image chelsea \
    --method occlusion --announce --frame-stats --device cpu >"$log" 2>&1 &
  app=$!
  for _ in $(seq 1 600); do
    grep -q "explanation ready" "$log" && break
    kill -0 "$app" 2>/dev/null || { cat "$log"; echo "easel exited early" >&2; exit 1; }
    sleep 0.5
  done
  kill "$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
  t=$(sed -n 's/.*explanation ready: occlusion in \([0-9.]*\) s.*/\1/p' "$log")
  [ -n "$t" ] || { cat "$log"; echo "no occlusion time from the app" >&2; exit 1; }
  app_times+=("$t")
  echo "round $r: the app (Xvfb) occlusion in $t s; $(grep 'frames drawn' "$log" | sed 's/easel: //')"
done
python3 - "${cli_times[*]}" "${app_times[*]}" <<'PY'
import statistics, sys
cli = [float(x) for x in sys.argv[1].split()]
app = [float(x) for x in sys.argv[2].split()]
c, a = statistics.median(cli), statistics.median(app)
print(f"median: easel explain {c:.1f} s, the app {a:.1f} s, app / CLI = {a / c:.2f}")
PY
