# Shared setup for scripts/train.sh and scripts/test.sh (sourced, not run).
# Creates .venv, installs ember with the given extras, and installs Debian packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_install() {  # apt_install PKG... : install Debian packages that are not there yet
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

make_venv() {  # make_venv EXTRAS : .venv with ember installed editable (EXTRAS e.g. "test,viz")
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$1]"
  # ember's own bytecode, as pip writes it for what it installs (an editable install gets none):
  # a first launch then starts ~0.5 s sooner, and every launch where PYTHONDONTWRITEBYTECODE is set
  # (1.4-1.9 -> 0.9-1.3 s to ember train's first batch, warm kernels; benchmarks/RESULTS.md)
  .venv/bin/python -m compileall -q ember >/dev/null
}
