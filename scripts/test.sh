#!/usr/bin/env bash
# Quick start, command 2: set up everything the tests need and run the whole test suite.
# (Fashion-MNIST and Chromium from Debian; torch==2.13.0, pytest, hypothesis, matplotlib, and
# Playwright, which drives /usr/bin/chromium: never `playwright install`.)
source "$(dirname "$0")/_setup.sh"
apt_install dataset-fashion-mnist chromium   # chromium: the playground's browser test

make_venv "test,viz,images,distributed"
exec .venv/bin/python -m pytest "$@"
