#!/bin/sh
# Installs ONNX Runtime for Node.js (the npm package onnxruntime-node, whose CPU build ships inside
# the package) into DIR (default build/onnxruntime), for the numeric comparison of
# tests/lua/test_export.lua (tests/onnx/ort_compare.js). `make deps` runs it.
#
# The package's postinstall script fetches GPU libraries from outside the npm registry, which is
# neither needed nor reachable: ONNXRUNTIME_NODE_INSTALL=skip and --ignore-scripts both keep it
# from running. Without npm, or when the registry cannot be reached, this says so and succeeds:
# the test then skips the comparison, saying why.
#   usage: tests/onnx/install_ort.sh [DIR]
dir=${1:-build/onnxruntime}
version=1.30.0
probe="require('onnxruntime-node').InferenceSession"
if [ -d "$dir/node_modules/onnxruntime-node" ] &&
   NODE_PATH="$dir/node_modules" node -e "$probe" >/dev/null 2>&1; then
  echo "onnxruntime: onnxruntime-node is in $dir"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "onnxruntime: node and npm are not installed; the ONNX Runtime comparison will be skipped"
  exit 0
fi
mkdir -p "$dir"
echo "onnxruntime: npm install onnxruntime-node@$version into $dir"
if ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$dir" --no-save --no-audit --no-fund \
     --ignore-scripts "onnxruntime-node@$version" &&
   NODE_PATH="$dir/node_modules" node -e "$probe" >/dev/null 2>&1; then
  echo "onnxruntime: installed"
else
  echo "onnxruntime: the install failed; the ONNX Runtime comparison will be skipped"
fi
exit 0
