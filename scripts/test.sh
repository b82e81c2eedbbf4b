#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite headless (Xvfb for Qt and VTK).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest -q "$@"
