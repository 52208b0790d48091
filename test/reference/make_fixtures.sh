#!/usr/bin/env bash
# Regenerates every committed fixture from the PyTorch reference scripts.
# Needs Debian's python3-torch (and python3-sentencepiece, python3-protobuf for
# the tokenizer), run by Debian's own interpreter, not a pyenv python3 on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "make_fixtures: $PY cannot import torch; install it with: apt-get install -y python3-torch python3-sentencepiece python3-protobuf" >&2
  exit 2
fi
for script in test/reference/ops_*.py; do
  echo "== $script"
  "$PY" "$script"
done
for script in make_pt_fixtures make_unet_cases make_movq_cases make_diffusion_cases make_t5_cases make_keymap_fixture; do
  if [ -f "test/reference/$script.py" ]; then
    echo "== $script"
    "$PY" "test/reference/$script.py"
  fi
done
