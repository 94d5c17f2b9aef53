#!/usr/bin/env bash
# schemas/ against the code: schema_samples writes events with Cascade's own
# writers and the parsers' verdicts on a corpus of payloads, check_schemas.py
# validates them with Debian's python3-jsonschema. Exit 77 (skipped) without it.
set -euo pipefail
SAMPLES=$1
SCHEMAS=$2
if ! /usr/bin/python3 -c 'import jsonschema' 2>/dev/null; then
  echo "SKIP: python3-jsonschema is not installed (make deps)"
  exit 77
fi
OUT=$(mktemp -d /tmp/cascade-schemas.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
"$SAMPLES" "$OUT"
/usr/bin/python3 "$(dirname "$0")/check_schemas.py" --schemas "$SCHEMAS" --samples "$OUT"
