#!/usr/bin/env bash
# Re-run the README's Results: every `latent-sweep …` command of the ```bash blocks under
# `## Results`, in order, read from README.md at run time (so a sweep added there is re-run
# here). `run` commands train the sweeps (minutes to hours on a laptop); `compare`, `table`
# and `importance` print each table as it appears, under its section's heading.
#
#   bash scripts/results.sh --dry-run            list the commands, run nothing
#   bash scripts/results.sh                      run them all, results in results/<name>/
#   bash scripts/results.sh --storage DIR        results in DIR/<name>/ (every results/ path rewritten)
#   bash scripts/results.sh --tables-only        only the analysis commands, on results already there
#
# A sweep whose results directory already exists is refused by `latent-sweep run`: give another
# --storage, or remove it. Exit status: 0 when every command exited 0, else 1 (all are run).
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0 TABLES_ONLY=0 STORAGE=results
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --tables-only) TABLES_ONLY=1 ;;
    --storage) STORAGE=${2:?--storage needs a directory}; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "results.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
CLI=.venv/bin/latent-sweep
[ -x "$CLI" ] || CLI=latent-sweep

# One line per item: "# <heading>" or a command (continuation lines joined, comments dropped).
mapfile -t ITEMS < <("$PY" scripts/doc_commands.py results README.md) || exit 1
[ ${#ITEMS[@]} -gt 0 ] || { echo "results.sh: no commands under README.md's ## Results" >&2; exit 1; }

failed=()
for item in "${ITEMS[@]}"; do
  if [[ $item == "# "* ]]; then
    printf '\n## %s\n' "${item#\# }"
    continue
  fi
  read -r -a words <<<"$item"
  verb=${words[1]}
  [ "$TABLES_ONLY" = 1 ] && [ "$verb" = run ] && continue
  cmd=$item
  if [ "$STORAGE" != results ]; then
    cmd=${cmd//results\//$STORAGE/}
    [ "$verb" = run ] && cmd+=" --storage $STORAGE"
  fi
  if [ "$DRY" = 1 ]; then
    printf '%s\n' "$cmd"
    continue
  fi
  printf '\n$ %s\n' "$cmd"
  if ! bash -c "${cmd/#latent-sweep/$CLI}"; then
    failed+=("$cmd")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  printf '\nfailed (%d):\n' "${#failed[@]}" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
