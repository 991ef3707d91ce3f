#!/usr/bin/env bash
# Set up face-audit and run the London audit with dlib; the report lands in reports/london-dlib/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet -e '.[dlib]'
# Use the local copy of the public datasets when it is there (it is checked file by file
# against the manifest's sha256 values); otherwise face-audit downloads from the public source.
if [ -z "${FACE_AUDIT_MIRROR:-}" ] && [ -d ../shared/datasets ]; then
  export FACE_AUDIT_MIRROR="$(cd ../shared/datasets && pwd)"
fi
face-audit run examples/london-dlib.toml "$@"
