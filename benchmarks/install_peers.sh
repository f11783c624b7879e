#!/usr/bin/env bash
# Benchmark-only install of the peer tool Lucent (not a gradviz dependency).
# torch-lucent 0.1.8 pins old torch/kornia versions; installed without them it runs on current torch
# with kornia 0.4.1 (the last version whose API it uses), decorator and tqdm beside it.
set -euo pipefail
pip install --no-deps "torch-lucent==0.1.8" "kornia==0.4.1" decorator tqdm
python -c "import lucent.optvis.render, kornia; print('lucent ready, kornia', kornia.__version__)"
