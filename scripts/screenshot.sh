#!/usr/bin/env bash
# Start easel under Xvfb on the photos demo, run one explanation, save a screenshot.
#   scripts/screenshot.sh [OUT.png] [METHOD]
# Environment: DEMO=photos|fashion, IMAGE=<part of a name>,
# TAB=explain|compare|adversarial|dataset|sampling|pretraining, RUNS=<folder of easel sample runs
# or of an easel transfer lab>,
# SIZE=1024x640 (the window; default 1400x860), CELL=6,0 (with TAB=dataset: open that
# confusion-matrix cell's gallery), PANE=fool|robust (with TAB=adversarial: run that pane),
# VERSUS=<model card B> (with TAB=dataset: A versus B).
# Needs Xvfb and ImageMagick (`apt-get install -y xvfb imagemagick`). Prints the UI thread's
# frame times measured while the map computed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshot.png}
method=${2:-occlusion}
demo=${DEMO:-photos}
image=${IMAGE:-chelsea}
display=${DISPLAY_NUMBER:-97}
size=${SIZE:-1400x860}
cargo build --release --quiet
Xvfb ":$display" -screen 0 1600x1000x24 >/dev/null 2>&1 &
xvfb=$!
log=$(mktemp)
# a fresh settings folder, so what the app remembers from earlier runs does not change the picture
state=$(mktemp -d)
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$log" "$state"' EXIT
sleep 1
DISPLAY=":$display" XDG_DATA_HOME="$state" ./target/release/easel gui --demo "$demo" --image "$image" --method "$method" \
  --tab "${TAB:-explain}" ${RUNS:+--runs "$RUNS"} ${CELL:+--open-cell "$CELL"} ${PANE:+--pane "$PANE"} ${VERSUS:+--versus "$VERSUS"} --window-size "$size" --announce --frame-stats --device cpu >"$log" 2>&1 &
app=$!
case "${PANE:-}${VERSUS:+versus}" in versus) ready="versus ready" ;; fool) ready="fooling gallery ready" ;; robust) ready="robustness ready" ;; *) ready="" ;; esac
[ -n "$ready" ] || case "${TAB:-explain}" in compare) ready="compare ready" ;; adversarial) ready="attack ready" ;; dataset) ready="evaluation ready" ;; sampling) ready="lab ready" ;; pretraining) ready="pre-training ready" ;; *) ready="explanation ready" ;; esac
for _ in $(seq 1 600); do
  grep -q "$ready" "$log" && break
  kill -0 "$app" 2>/dev/null || { cat "$log"; echo "easel exited early" >&2; exit 1; }
  sleep 0.5
done
grep -q "$ready" "$log" || { cat "$log"; echo "no explanation within 5 minutes" >&2; exit 1; }
sleep 1
mkdir -p "$(dirname "$out")"
DISPLAY=":$display" import -window root -crop "${size}+0+0" "$out"
grep "frame times" "$log" || true
echo "saved $out"
