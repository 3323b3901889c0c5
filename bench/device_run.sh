#!/usr/bin/env bash
# One `make bench` run on the 16-core device machine (issue 16), results and profiles to $OUT.
# Here first: ../shared/tools/device-wheels.sh -r constraints.txt (then drop the wheels a bench
# does not import to stay under 64 MiB) and fetch py-spy's wheel into .whl; carry `.whl`.
# There: bash bench/device_run.sh
set -u
# Bytecode compiled at install, as pip does for any user (the machine sets
# PYTHONDONTWRITEBYTECODE, so without it every spawn would compile every module and start-up
# would time the compiler): the wheels and the project's tree, by compileall on every core.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
python3 -m compileall -q -j 0 /tmp/site src bench > /dev/null || exit 1
export PYTHONPATH=/tmp/site:$PWD/src LITELLM_LOCAL_MODEL_COST_MAP=True PYTHONUNBUFFERED=1
export PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp/bench-out}
mkdir -p "$out"
{ nproc; python3 --version; cat /proc/cpuinfo | grep -m1 'model name'
  python3 -c 'import os; os.sched_setaffinity(0, {3}); print("affinity", os.sched_getaffinity(0))'
  ls /proc/self/task/*/children 2>&1 | head -1
  # Which logical CPUs share a physical core (pinned servers beside busy siblings share it).
  grep -H . /sys/devices/system/cpu/cpu*/topology/thread_siblings_list 2>&1 | head -16
  python3 -c 'import triage.cli, fastapi, uvicorn, aiohttp, litellm; print("aiohttp", aiohttp.__version__)'
} 2>&1 | tee "$out/machine.txt"
timeout "${BENCH_TIMEOUT:-420}" python3 bench/run.py 2>&1 | tee "$out/bench.log"
cp bench/results/latest.json "$out/latest.json" 2>/dev/null
for mode in ${PROFILES:-plain stream}; do
  flag=$([ $mode = stream ] && echo --stream)
  timeout 60 python3 bench/profile_triage.py $flag --seconds 8 --top 30 \
    --raw-out "$out/profile-$mode.raw" > "$out/profile-$mode.txt" 2>&1
  head -60 "$out/profile-$mode.txt"
done
