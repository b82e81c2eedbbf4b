#!/usr/bin/env bash
# Set up radview on a fresh Debian/Ubuntu machine: system libraries for Qt/VTK, a virtual
# environment in .venv, and the package with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# poppler-utils: pdftotext / pdfinfo read the PDF report in tests (tests/qt/test_report.py)
# dcmtk (dcmmkdir, getscu, movescu, storescu), orthanc + orthanc-dicomweb: a real PACS for the PACS tests and bench
# (installed, never started as a service: tests start it on loopback with their own configuration)
PKGS="python3-venv libglib2.0-0 libgl1 libegl1 libfontconfig1 libxkbcommon0 libdbus-1-3 libosmesa6 \
xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcursor1 \
libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 dicom3tools poppler-utils \
dcmtk orthanc orthanc-dicomweb"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || $PY -m venv .venv
# torch: the CPU build (2.13.0) is pinned for tests and CI; users with a GPU install a CUDA build instead.
INSTALL=(-e ".[test,export,ai,onnx,nnunet,batch,xrv]" "torch==2.13.0")
CHECK="import viewer, pydicom, SimpleITK, PySide6, pyqtgraph, vtk"
# pip runs only when what it would act on changed since the last install that succeeded: pyproject.toml, INSTALL
# above, or the folder (an editable install points at it). The stamp in .venv holds their hash; a fresh machine
# (no .venv, no stamp) installs, and so does a .venv whose packages no longer import.
STAMP=.venv/.radview-installed
WANT=$({ cat pyproject.toml; printf '%s\n' "${INSTALL[@]}" "$PWD"; } | sha256sum | cut -d" " -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && .venv/bin/python -c "$CHECK" 2>/dev/null; then
  echo "setup: .venv is up to date with pyproject.toml (pip install skipped; delete $STAMP to force it)"
else
  rm -f "$STAMP"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
  # the filter drops pip's notes about absent local indexes; with pipefail the status is pip's
  installed=""
  if .venv/bin/python -m pip install -q "${INSTALL[@]}" 2>&1 | { grep -v "^WARNING: Location" || true; }; then
    installed=1
  else
    echo "setup: pip install failed; no stamp written, the next run installs again" >&2
  fi
  .venv/bin/python -c "$CHECK"
  if [ -n "$installed" ]; then echo "$WANT" > "$STAMP"; fi
fi
