"""check_npy.py: reads what model:export_npy wrote with numpy and json, for
tests/lua/test_export.lua. Run it with Debian's python3 (python3-numpy):
    /usr/bin/python3 tests/onnx/check_npy.py DIR
Prints one line per file the index names, then a summary:
    file <name> <shape as in the array> <dtype> <sum in float64>
    index <layers> layers <files> files, shapes as the index says
or "fail <reason>" and exit status 1 when a file is missing or its shape is not the index's.
"""
import json
import os
import sys

import numpy


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    files = 0
    for layer in index["layers"]:
        for part in layer["files"]:
            array = numpy.load(os.path.join(folder, part["file"]))
            if list(array.shape) != part["shape"]:
                print("fail %s is %s, the index says %s" % (part["file"], array.shape, part["shape"]))
                return 1
            print("file %s %s %s %.9g" % (part["file"], "x".join(str(d) for d in array.shape),
                                          array.dtype, array.astype(numpy.float64).sum()))
            files += 1
    print("index %d layers %d files, shapes as the index says" % (len(index["layers"]), files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
