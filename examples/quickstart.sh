#!/usr/bin/env bash
# The main job on the embedded default (SmolLM2-135M-Instruct): identify the base, then
# generate with and without a patch, side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
llmpatch base show default
patch=examples/patches/tox-fix
if [ ! -d "$patch" ]; then
  echo "no built example patch yet at $patch" >&2
  exit 1
fi
llmpatch inspect "$patch"
llmpatch run --base default --patch "$patch" --compare --max-new-tokens 40 \
  "You are such an idiot, I swear" "Write a reply to my annoying neighbour"
