#!/bin/sh
# Instructions per call of bench/perstream.py (callgrind), for each checkout given:
#   bench/perstream_compare.sh [--part all|decode|record|deadline|relay] [--sinks metrics,access]
#       [--batch 32] [--calls 1000] [--upstream-model NAME] CHECKOUT...
# Each count is (a run of N calls) - (a run of 0 calls), divided by N: start-up left out;
# PYTHONHASHSEED=0, so a checkout counts the same each time.
set -e
part=all
sinks=metrics,access
batch=32
calls=1000
model=
while [ $# -gt 0 ]; do
    case "$1" in
        --part) part=$2; shift 2 ;;
        --sinks) sinks=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        --upstream-model) model=$2; shift 2 ;;
        *) break ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
out=$(mktemp -d)
count() {  # checkout calls -> instructions
    PYTHONHASHSEED=0 PYTHONPATH=$1 valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
        "$python" "$here/perstream.py" --part "$part" --sinks "$sinks" --batch "$batch" \
        --calls "$2" ${model:+--upstream-model "$model"} >"$out/stdout" 2>/dev/null
    sed -n 's/^summary: //p' "$out/cg"
}
for checkout in "$@"; do
    zero=$(count "$checkout" 0)
    many=$(count "$checkout" "$calls")
    echo "$checkout part=$part sinks=$sinks batch=$batch:" \
         "$(( (many - zero) / calls )) instructions/call ($(cat "$out/stdout"))"
done
rm -rf "$out"
