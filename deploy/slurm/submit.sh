#!/bin/bash
# Submit the evaluation array and the merge that runs once every task succeeded.
#
#   MODEL=/shared/model/card.json DATA=/shared/images OUT_DIR=/shared/results SHARDS=16 \
#     bash deploy/slurm/submit.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SHARDS=${SHARDS:-8}
export MODEL DATA OUT_DIR=${OUT_DIR:-results}
job=$(sbatch --parsable --export=ALL --array=0-$((SHARDS - 1)) "$here/evaluate.sbatch")
sbatch --export=ALL --dependency=afterok:"${job%%;*}" "$here/merge.sbatch"
