#!/usr/bin/env bash
# Quick start, command 2: set up everything the tests need and run the whole test suite.
# (Fashion-MNIST and Chromium from Debian; torch==2.13.0, pytest, hypothesis, matplotlib, playwright.)
source "$(dirname "$0")/_setup.sh"
apt_install dataset-fashion-mnist
make_venv "test,viz"
exec .venv/bin/python -m pytest "$@"
