#!/usr/bin/env bash
# The whole suite, one pytest call per tier (unit, ray, e2e, cluster, gpu): each tier's time and
# its 15 slowest tests are printed, so a slow-down shows before it becomes CI's timeout.
# Every tier runs even when an earlier one fails; the exit status is 1 if any tier failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# The CPU and its kind as `rlsys doctor` and docs/tests.md's table name them (timings differ by kind).
machine=$(.venv/bin/python -c "from rlsys.diagnostics.machine import cpu_info, machine_kind
i = cpu_info(); print(i['model'] + ', ' + machine_kind(i['isa']))" 2>/dev/null || echo "unknown CPU")
echo "rlsys: the suite on $(nproc) cores, $machine" >&2
status=0 report="" suite_started=$SECONDS
for tier in unit ray e2e cluster gpu; do
  started=$SECONDS
  echo "rlsys: tier tests/$tier" >&2
  .venv/bin/python -m pytest -q -ra --durations=15 "tests/$tier"
  rc=$?
  [ "$rc" -eq 5 ] && rc=0  # no test collected (the GPU tier off a GPU machine) is not a failure
  [ "$rc" -ne 0 ] && status=1
  report+=$(printf '  %-8s %5d s  %s' "$tier" $((SECONDS - started)) "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)")")$'\n'
done
printf 'rlsys: the suite by tier (%s, %s cores):\n%s  %-8s %5d s\n' \
  "$machine" "$(nproc)" "$report" total $((SECONDS - suite_started))
exit $status
