#!/usr/bin/python3
"""gen_onnx_pool_golden.py: the ONNX node tests of 2-D MaxPool / AveragePool (the onnx package's
own expected outputs, /usr/share/libonnx-testdata/data/node/test_{averagepool,maxpool}_2d_*)
as an SQGOLD01 fixture (tests/util_golden.h) for tests/test_graph_ops.c.

Per case: "<case>.cfg" = [kind (0 max, 1 avg), n, c, h, w, kh, kw, sh, sw, pad_t, pad_l, pad_b,
pad_r, ceil_mode, count_include_pad] with auto_pad SAME_UPPER / SAME_LOWER resolved to explicit
pads (ONNX: total = (ceil(in / s) - 1) s + k - in, the odd one at the end / the start);
"<case>.x" the input and "<case>.y" the expected output. Cases with dilations or integer inputs
are left out (sqakd pools are float, dilation 1).

Usage: /usr/bin/python3 tools/gen_onnx_pool_golden.py [testdata dir] > tests/data/onnx_pool_golden.bin
"""
import glob
import math
import os
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper

root = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/libonnx-testdata/data/node"
cases = []
for d in sorted(glob.glob(os.path.join(root, "test_averagepool_2d_*")) +
                glob.glob(os.path.join(root, "test_maxpool_2d_*"))):
    name = os.path.basename(d)[len("test_"):]
    if "dilations" in name or "uint8" in name:
        continue
    m = onnx.load(os.path.join(d, "model.onnx"))
    node = m.graph.node[0]
    if len(node.output) != 1:
        continue
    a = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
    if a.get("dilations") and any(v != 1 for v in a["dilations"]):
        continue
    x = numpy_helper.to_array(onnx.load_tensor(os.path.join(d, "test_data_set_0", "input_0.pb")))
    y = numpy_helper.to_array(onnx.load_tensor(os.path.join(d, "test_data_set_0", "output_0.pb")))
    if x.dtype != np.float32:
        continue
    n, c, h, w = x.shape
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    pads = list(a.get("pads", [0, 0, 0, 0]))  # [t, l, b, r]
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        p = []
        for i, k, s in ((h, kh, sh), (w, kw, sw)):
            tot = max((math.ceil(i / s) - 1) * s + k - i, 0)
            small = tot // 2
            p.append((small, tot - small) if auto == "SAME_UPPER" else (tot - small, small))
        pads = [p[0][0], p[1][0], p[0][1], p[1][1]]
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    kind = 0 if node.op_type == "MaxPool" else 1
    cfg = [kind, n, c, h, w, kh, kw, sh, sw, pads[0], pads[1], pads[2], pads[3],
           a.get("ceil_mode", 0), a.get("count_include_pad", 0)]
    cases.append((name, np.array(cfg, np.float32), x.astype(np.float32), y.astype(np.float32)))

out = sys.stdout.buffer
tensors = []
for name, cfg, x, y in cases:
    tensors += [(name + ".cfg", cfg), (name + ".x", x), (name + ".y", y)]
out.write(b"SQGOLD01" + struct.pack("<II", 1, len(tensors)))
for tname, t in tensors:
    b = tname.encode()
    out.write(struct.pack("<I", len(b)) + b + struct.pack("<I", t.ndim))
    out.write(struct.pack("<%dq" % t.ndim, *t.shape))
    out.write(np.ascontiguousarray(t, dtype="<f4").tobytes())
for name, cfg, _, _ in cases:
    print(name, cfg.astype(int).tolist(), file=sys.stderr)
