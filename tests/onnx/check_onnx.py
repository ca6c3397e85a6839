"""check_onnx.py: ONNX's own checker on exported models, for tests/lua/test_export.lua. Run it with
Debian's python3 (python3-onnx; python3-numpy comes with it):
    /usr/bin/python3 tests/onnx/check_onnx.py MODEL.onnx [NPY_DIR]
It runs onnx.checker.check_model(model, full_check=True) (the structural checks and strict shape
inference), then prints what the test asserts, one "key value" a line:
    checker ok                      (or "fail <reason>" and exit status 1)
    ir 8 / opset 13 / producer fmnist-lua 0.1.0 / meta_<key> <value>
    input input N,1,28,28 / output probabilities N,10 / output logits N,10
    node <name> <op> <inputs,...> <attr>=<values>;...   (in graph order)
    init <name> <dims>
With NPY_DIR (what model:export_npy wrote for the same model), every initializer that has a .npy
of the same name is compared with it after the layout change the export makes (conv2d weights
HWIO -> OIHW; everything else as it is):
    weights_match <count> / weights_differ <name>
"""
import os
import sys

import numpy
import onnx
from onnx import numpy_helper


def dims(value_info):
    return ",".join(d.dim_param or str(d.dim_value) for d in value_info.type.tensor_type.shape.dim)


def attr_text(a):
    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    elif isinstance(value, float):
        value = str(numpy.float32(value))
    return "%s=%s" % (a.name, value)


def main():
    path = sys.argv[1]
    model = onnx.load(path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the checker's own message is the point
        print("fail %s" % str(e).replace("\n", " "))
        return 1
    print("checker ok")
    print("ir %d" % model.ir_version)
    for o in model.opset_import:
        print("opset %d" % o.version)
    print("producer %s %s" % (model.producer_name, model.producer_version))
    for p in model.metadata_props:
        print("meta_%s %s" % (p.key, p.value))
    g = model.graph
    for i in g.input:
        print("input %s %s" % (i.name, dims(i)))
    for o in g.output:
        print("output %s %s" % (o.name, dims(o)))
    for n in g.node:
        print("node %s %s %s %s" % (n.name, n.op_type, ",".join(n.input),
                                    ";".join(attr_text(a) for a in n.attribute)))
    for t in g.initializer:
        print("init %s %s" % (t.name, ",".join(str(d) for d in t.dims)))
    if len(sys.argv) > 2:
        matched = 0
        for t in g.initializer:
            npy = os.path.join(sys.argv[2], t.name + ".npy")
            if not os.path.exists(npy):
                continue
            engine = numpy.load(npy)
            if "conv2d_weight" in t.name:
                engine = engine.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            if numpy.array_equal(numpy_helper.to_array(t), engine):
                matched += 1
            else:
                print("weights_differ %s" % t.name)
        print("weights_match %d" % matched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
