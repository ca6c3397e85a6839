/* fm_onnx: a network as an ONNX model file, for other runtimes (ONNX Runtime, OpenCV, TensorRT...).
 *
 * What the file computes: from the input "input", float32 of shape [N, C, H, W] (NCHW, as ONNX
 * convolutions take it; for this project's models [N, 1, 28, 28], pixels scaled to [0, 1] as the
 * engine scales them), the outputs "probabilities" (the softmax, [N, classes]) and "logits" (the
 * last layer's scores, [N, classes]) — what fm_net_predict gives, in inference mode: batch norm
 * with its running statistics, dropout left out.
 *
 * How the engine's layers become ONNX operators (opset FM_ONNX_OPSET, IR version FM_ONNX_IR):
 *   dense       Gemm with the weights as they are ([in][out]) and the bias, on a [N, in] input
 *               flattened in the engine's HWC order: a spatial input goes through Transpose to
 *               NHWC and Flatten first (a plain Flatten when it has one channel or one pixel,
 *               where both orders agree)
 *   conv2d      Conv, weights transposed from HWIO to OIHW; "same" padding as explicit pads
 *               [top, left, bottom, right], the odd one at the bottom/right as the engine (and
 *               TensorFlow) put it; depthwise as group = channels; no bias input without a bias
 *   batchnorm   BatchNormalization with scale, shift, running mean and variance, the spec's epsilon
 *   maxpool     MaxPool / AveragePool with kernel_shape and strides, no padding (floor)
 *   avgpool
 *   global_avgpool  GlobalAveragePool
 *   relu        Relu;  relu6: Clip(x, 0, 6)
 *   add         Add (a chain of them for more than two inputs, summed in the engine's order)
 *   flatten     Transpose + Flatten as for dense (the engine flattens HWC)
 *   dropout     nothing (inference)
 * A flat tensor (1 x 1 x size) that feeds a spatial operator is reshaped to [N, size, 1, 1].
 * Names are readable: the node and tensor of layer 3, a conv2d, are "03_conv2d" (three digits
 * from 100 layers on); its weights "03_conv2d_weight"; helpers "03_conv2d_flat" and so on. The
 * model records the producer ("fmnist-lua" and its version), the model kind and the class names
 * (metadata_props "model_kind", "classes" as a JSON array of strings, "input_layout",
 * "outputs").
 *
 * The protobuf encoding is written here by hand (only writing is needed, and only the dozen
 * messages and fields of onnx.proto used below), streamed to the file: each nested message is
 * measured by a counting pass before it is written, so nothing but the small graph description
 * is held in memory; convolution weights are transposed while they are written.
 *
 * Errors: FM_ERR with a message naming the path (as fm_file.h: a symbolic link, a directory or
 * another non-regular file at the path is refused; a failure leaves any earlier file untouched)
 * or the layer that cannot be expressed. */
#ifndef FM_ONNX_H
#define FM_ONNX_H

#include "fm_net.h"

#define FM_ONNX_IR 8
#define FM_ONNX_OPSET 13

typedef struct fm_onnx_info {
  const char *producer_version;   /* "0.1.0"; NULL leaves it out */
  const char *model_kind;         /* "CNN", "ResNet", ...; NULL: "Model" */
  const char *const *class_names; /* names of classes 0..n_class_names - 1 (the others are
                                     "class 10", ...); NULL when there are none */
  int n_class_names;
} fm_onnx_info;

/* Writes net (built and bound: parameters and state) to path as an ONNX model, atomically. */
int fm_onnx_write(const fm_net *net, const char *path, const fm_onnx_info *info);

/* s as text for a file that must hold UTF-8 (protobuf strings, JSON): every byte that is not part
 * of a valid UTF-8 sequence, and every control character, becomes '?'; cut to fit size bytes
 * (size >= 9) at a character boundary. The model kind is any bytes a user or a file gave. */
void fm_onnx_text(char *out, size_t size, const char *s);

#endif
