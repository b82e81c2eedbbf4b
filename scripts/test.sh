#!/usr/bin/env bash
# Set up (if needed) and run every check headless: ruff, the import contracts, then the whole test suite (Xvfb for
# Qt and VTK). Any of them failing fails the command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff (pyflakes, pycodestyle, isort, bugbear, banned module-level imports)"
.venv/bin/ruff check viewer ai radview_base tests bench
echo "== lint-imports (the rooms' contracts in pyproject.toml)"
.venv/bin/lint-imports --no-cache
echo "== pytest"
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest -q "$@"
