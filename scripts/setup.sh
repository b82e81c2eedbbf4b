#!/usr/bin/env bash
# Set up radview on a fresh Debian/Ubuntu machine: system libraries for Qt/VTK, a virtual
# environment in .venv, and the package with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# poppler-utils: pdftotext / pdfinfo read the PDF report in tests (tests/qt/test_report.py)
PKGS="python3-venv libglib2.0-0 libgl1 libegl1 libfontconfig1 libxkbcommon0 libdbus-1-3 libosmesa6 \
xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcursor1 \
libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 dicom3tools poppler-utils"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || $PY -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch: the CPU build (2.13.0) is pinned for tests and CI; users with a GPU install a CUDA build instead.
.venv/bin/python -m pip install -q -e ".[test,export,ai,onnx,nnunet]" "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import viewer, pydicom, SimpleITK, PySide6, pyqtgraph, vtk" 
