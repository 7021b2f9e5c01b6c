#!/usr/bin/env bash
# What tests/test_playground_e2e.py needs: Debian's chromium and Playwright's Python package
# (which bundles its driver). Never `playwright install`: the test drives /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q playwright
