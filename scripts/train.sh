#!/usr/bin/env bash
# Quick start, command 1: set up (virtualenv, ember, Fashion-MNIST) and run the main job:
# LeNet-5 on Fashion-MNIST with ember's own backpropagation. Extra arguments go to `ember train`.
source "$(dirname "$0")/_setup.sh"
apt_install dataset-fashion-mnist
make_venv "viz"
exec .venv/bin/ember train "$@"
