// ort_compare.js: runs an exported ONNX model in ONNX Runtime (onnxruntime-node) and compares its
// outputs with the engine's, for tests/lua/test_export.lua.
//   NODE_PATH=build/onnxruntime/node_modules node tests/onnx/ort_compare.js \
//     model.onnx images.npy probabilities.npy [logits.npy]
// images.npy: N x 784 (or N x 28 x 28) float32 pixels in [0, 1], fed as N x 1 x 28 x 28;
// probabilities.npy: the engine's predict_proba (N x classes); logits.npy: the engine's last
// layer for the first M images (M x classes). Prints one line:
//   rows N classes K prob_max_abs_diff X logit_max_abs_diff Y argmax_differs Z
// and exits 1 (with a message on stderr) when anything cannot be read or run.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// A little-endian float32 C-order .npy file: {shape, data}.
function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  if (!/'descr': '<f4'/.test(header) || !/'fortran_order': False/.test(header))
    throw new Error(`${path}: not a little-endian float32 C-order array: ${header}`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map(s => s.trim())
    .filter(s => s.length).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = buf.subarray(start + hlen, start + hlen + 4 * count);
  if (bytes.length !== 4 * count) throw new Error(`${path}: truncated`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = bytes.readFloatLE(4 * i);
  return { shape, data };
}

async function main() {
  const [modelPath, imagesPath, probsPath, logitsPath] = process.argv.slice(2);
  if (!probsPath) throw new Error('usage: ort_compare.js model.onnx images.npy probabilities.npy [logits.npy]');
  const images = readNpy(imagesPath), expected = readNpy(probsPath);
  const n = images.shape[0], classes = expected.shape[1];
  if (images.data.length !== n * 784) throw new Error(`${imagesPath}: not N x 784 images`);
  const session = await ort.InferenceSession.create(modelPath);
  const input = new ort.Tensor('float32', images.data, [n, 1, 28, 28]);
  const out = await session.run({ input });
  const probs = out.probabilities, logits = out.logits;
  if (probs.dims[0] !== n || probs.dims[1] !== classes)
    throw new Error(`probabilities are ${probs.dims.join('x')}, the engine's ${n}x${classes}`);
  let probDiff = 0, argmaxDiffers = 0;
  for (let i = 0; i < n; i++) {
    let a = 0, b = 0;
    for (let c = 0; c < classes; c++) {
      const k = i * classes + c;
      probDiff = Math.max(probDiff, Math.abs(probs.data[k] - expected.data[k]));
      if (probs.data[k] > probs.data[i * classes + a]) a = c;
      if (expected.data[k] > expected.data[i * classes + b]) b = c;
    }
    if (a !== b) argmaxDiffers++;
  }
  let logitDiff = -1;
  if (logitsPath) {
    const engine = readNpy(logitsPath);
    logitDiff = 0;
    for (let k = 0; k < engine.data.length; k++)
      logitDiff = Math.max(logitDiff, Math.abs(logits.data[k] - engine.data[k]));
  }
  console.log(`rows ${n} classes ${classes} prob_max_abs_diff ${probDiff.toExponential(3)} ` +
    `logit_max_abs_diff ${logitDiff.toExponential(3)} argmax_differs ${argmaxDiffers}`);
}

main().catch(err => {
  console.error(`ort_compare: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
