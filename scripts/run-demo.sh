#!/usr/bin/env bash
# Set up (if needed) and open the viewer on the built-in demo study.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/radview --demo "$@"
