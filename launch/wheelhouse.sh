#!/usr/bin/env bash
# Wheels of nasheur and of the pure-Python packages it needs beside torch, numpy and scipy
# (hydra-core, omegaconf, antlr4-python3-runtime, submitit, hydra-submitit-launcher), each at
# the version installed here, for a GPU node that cannot reach a package index:
#   usage: bash launch/wheelhouse.sh [DIR]        (default: the checkout's .whl, which git
#   ignores; a relative DIR is taken from the folder it runs in)
# then, on the node (its own torch, numpy, scipy and PyYAML kept):
#   python3 -m pip install --no-index --no-deps --target /tmp/site DIR/*.whl
#   export PYTHONPATH=/tmp/site
# antlr4-python3-runtime 4.9.3 is published as source only: pip builds its wheel here.
set -euo pipefail
py=${PYTHON:-python3}
# DIR is the caller's: a relative one lies in the folder this runs from, made before the cd
if [[ -n ${1:-} ]]; then
    mkdir -p "$1"
    dir=$(cd "$1" && pwd)
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=${dir:-.whl}
mkdir -p "$dir"
rm -f "$dir"/*.whl  # one version of each: two stop an install
rm -rf build
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$dir" .
rm -rf build
for pkg in hydra-core omegaconf antlr4-python3-runtime submitit hydra-submitit-launcher; do
    version=$("$py" -c "from importlib.metadata import version; print(version('$pkg'))") ||
        { echo "wheelhouse: $pkg is not installed here (make install)" >&2; exit 1; }
    "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$dir" "$pkg==$version"
done
ls -1 "$dir"
