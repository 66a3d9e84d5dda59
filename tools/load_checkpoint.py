#!/usr/bin/env python3
"""load_checkpoint.py: pure-Python reader and writer of sqakd safetensors checkpoints.

Format: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
  {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
(space-padded so the data starts 8-byte aligned), then the raw little-endian tensor data, tensors
tiling the data area contiguously. Needs only struct, json and numpy; torch is optional.

Library use:
    from load_checkpoint import load, save, to_torch_state_dict
    tensors, meta = load("ckpt.safetensors")         # dict name -> numpy array, dict str -> str
    save("out.safetensors", tensors, meta)           # atomic: temp file, fsync, rename

Command line:
    load_checkpoint.py --check FILE
        one line per tensor:  tensor<TAB>"name"<TAB>DTYPE<TAB>[shape]<TAB>sum=<float64 sum>
        one line per metadata entry:  meta<TAB>"key"<TAB>"value"   (names and values JSON-quoted)
        a last line:  ok<TAB><n> tensors<TAB><m> metadata; exit 0 (exit 1 with a message if invalid)
    load_checkpoint.py --into-torch FILE [--arch NAME] [--input X.npy --out Y.npy] [--save M.pt]
        builds the checkpoint's network in PyTorch from its metadata: tools/torch_models.py's
        architecture and, for a quantized student, tools/torch_quant.py's quantized layers
        (quantizer, bits, --quant-first-last, deltas), which reproduce sqakd's forward; loads every
        tensor strictly: a checkpoint tensor the model has no place for, a model tensor the
        checkpoint lacks or a shape that differs is refused (exit 2, one line naming them), as is
        an imported ONNX graph (arch "graph"), which has no twin here. --input runs the model on a
        float32 [N, C, H, W] array normalised as sqakd normalises (normalize() below) and --out
        writes the logits; --save writes {"state_dict", "sqakd_meta"} with torch.save.
    load_checkpoint.py --from-torch MODEL.pt OUT.safetensors
                       (--like CKPT | --dataset NAME | --mean M --std S) [--arch A --classes N
                       --input-shape C,H,W] [--meta KEY=VALUE ...]
        converts a PyTorch state_dict ({"state_dict": ...} and {"model_state_dict": ...} too; a
        "module." prefix (DataParallel) is stripped; pickled modules are refused, as loading them
        runs code) to our format: floating tensors as F32, int64 as I64, int32 as I32, uint8/bool
        as U8. The input normalisation is never guessed: it comes from --like CKPT (which also
        gives arch, shape, classes and quantizer), from the "sqakd_meta" a --save wrote, from
        --dataset (fashion-mnist, mnist, cifar10, cifar100: sqakd's constants) or from
        --mean/--std (per channel, of pixels in [0, 1]; later ones override earlier ones);
        without any of them the conversion is refused. The tensors must be exactly the network's
        (the --like checkpoint's, else the zoo twin's): anything sqakd would ignore or miss is
        refused, naming the tensors.

Library use (PyTorch side):
    from load_checkpoint import load_torch_model, normalize
    model, meta = load_torch_model("student.safetensors")   # eval mode, sqakd's numerics
    logits = model(torch.from_numpy(normalize(uint8_images_nchw, meta)))
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

# Our C reader accepts the first four; load() also reads a few other standard dtypes.
DTYPES = {"F32": "<f4", "I64": "<i8", "I32": "<i4", "U8": "u1",
          "F64": "<f8", "F16": "<f2", "I16": "<i2", "I8": "i1", "BOOL": "?"}
WRITE_DTYPES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64",
                np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}
MAX_HEADER = 100 << 20


class FormatError(ValueError):
    """The file is not a valid safetensors file; the message names the file and byte offset."""


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in {keys!r}")
    return dict(pairs)


def load(path):
    """Reads a safetensors file strictly. Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    size = len(blob)
    if size < 8:
        raise FormatError(f"{path}: file is {size} bytes, too short for the 8-byte header length "
                          f"(truncated at offset {size})")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER:
        raise FormatError(f"{path}: header length {n} at offset 0 exceeds the 100 MiB limit")
    if n > size - 8:
        raise FormatError(f"{path}: header length {n} at offset 0 runs past the end of the file "
                          f"at offset {size} (truncated file?)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{path}: header at offset 8 is not valid UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header at offset 8 is not a JSON object")
    data_start, data_size = 8 + n, size - 8 - n
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{path}: __metadata__ must be an object of strings")
    spans, tensors = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"{path}: tensor {name!r} needs exactly dtype, shape, data_offsets")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise FormatError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise FormatError(f"{path}: tensor {name!r} has a bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(type(o) is int and o >= 0 for o in offs) or offs[1] < offs[0]):
            raise FormatError(f"{path}: tensor {name!r} has bad data_offsets {offs!r}")
        np_dtype = np.dtype(DTYPES[dtype])
        need = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
        if need != offs[1] - offs[0]:
            raise FormatError(f"{path}: tensor {name!r}: shape {shape} x {dtype} needs {need} bytes "
                              f"but data_offsets {offs} span {offs[1] - offs[0]}")
        if offs[1] > data_size:
            raise FormatError(f"{path}: tensor {name!r} ends at file offset {data_start + offs[1]}, "
                              f"past the end of the file at offset {size} (truncated file?)")
        spans.append((offs[0], offs[1], name))
        raw = blob[data_start + offs[0]:data_start + offs[1]]
        tensors[name] = np.frombuffer(raw, dtype=np_dtype).reshape(shape).copy()
    pos = 0
    for begin, end, name in sorted(spans):
        if begin < pos:
            raise FormatError(f"{path}: tensor {name!r} at file offset {data_start + begin} "
                              f"overlaps the previous tensor (ends at {data_start + pos})")
        if begin > pos:
            raise FormatError(f"{path}: gap in the data area at file offsets "
                              f"{data_start + pos}..{data_start + begin}")
        pos = end
    if pos != data_size:
        raise FormatError(f"{path}: {data_size - pos} bytes of trailing data from file offset "
                          f"{data_start + pos}")
    return tensors, dict(meta)


def save(path, tensors, metadata=None):
    """Writes tensors (dict name -> numpy array of float32/int64/int32/uint8) and metadata (values
    converted with str) atomically: "<path>.tmp.<pid>", fsync, rename, fsync of the directory."""
    header, chunks, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        if name == "__metadata__" or not name:
            raise ValueError(f"reserved or empty tensor name {name!r}")
        arr = np.asarray(arr)
        dtype = WRITE_DTYPES.get(arr.dtype.newbyteorder("="))
        if dtype is None:
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} is not one of float32, int64, "
                             f"int32, uint8; cast it first")
        data = np.ascontiguousarray(arr, dtype=np.dtype(DTYPES[dtype])).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def to_torch_state_dict(tensors):
    """dict name -> torch.Tensor (torch.from_numpy; I64 stays int64, as for num_batches_tracked)."""
    import torch
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}


def check(path):
    tensors, meta = load(path)
    for name, arr in tensors.items():
        dtype = [k for k, v in DTYPES.items() if np.dtype(v) == arr.dtype][0]
        total = float(np.sum(arr, dtype=np.float64))
        print(f"tensor\t{json.dumps(name)}\t{dtype}\t{json.dumps(list(arr.shape))}\tsum={total!r}")
    for k, v in meta.items():
        print(f"meta\t{json.dumps(k)}\t{json.dumps(v)}")
    print(f"ok\t{len(tensors)} tensors\t{len(meta)} metadata")
    return 0


# ---------------------------------------------------------------- PyTorch side
# host/data/spec.c sq_dataset_set_default_norm: the normalisation sqakd gives each known dataset,
# with the data's input shape and class count
DATASETS = {
    "fashion-mnist": ("0.286", "0.353", "1,28,28", 10),
    "mnist": ("0.1307", "0.3081", "1,28,28", 10),
    "cifar10": ("0.4914,0.4822,0.4465", "0.2023,0.1994,0.201", "3,32,32", 10),
    "cifar100": ("0.5071,0.4867,0.4408", "0.2675,0.2565,0.2761", "3,32,32", 100),
}
# the metadata --like (and a .pt written by --into-torch --save) carries over: what defines the
# network and its input, not the run that made it
LIKE_KEYS = ("arch", "input_shape", "classes", "norm_mean", "norm_std", "dataset", "role",
             "quantizer", "wbits", "abits", "delta_w", "delta_a", "quant_first_last", "graph")


class Refusal(Exception):
    """A request that would lose or invent information; the message is one line saying what and
    what to do instead."""


def _names(keys, limit=16):
    keys = list(keys)
    s = ", ".join(keys[:limit])
    return s + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _tools_path():
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)


def _meta_int(meta, key, path, lo, hi, default=None):
    v = meta.get(key)
    if v is None and default is not None:
        return default
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise Refusal(f"{path}: metadata '{key}' = {v!r} is not an integer") from None
    if not lo <= n <= hi:
        raise Refusal(f"{path}: metadata '{key}' = {n} is outside {lo}..{hi}")
    return n


def _shape(meta, path):
    s = meta.get("input_shape", "")
    try:
        c, h, w = (int(x) for x in s.split(","))
    except ValueError:
        raise Refusal(f"{path}: metadata 'input_shape' = {s!r} is not C,H,W") from None
    if not (1 <= c <= 4 and 1 <= h <= 8192 and 1 <= w <= 8192):
        raise Refusal(f"{path}: metadata 'input_shape' = {s!r} is outside C 1..4, H and W 1..8192")
    return c, h, w


def norm_of(meta, path="checkpoint"):
    """(mean, std) per input channel as float32 arrays, as sqakd parses norm_mean / norm_std
    (three numbers each; a checkpoint without them is normalised with mean 0, std 1 by sqakd)"""
    c = _shape(meta, path)[0]
    out = []
    for key, default in (("norm_mean", 0.0), ("norm_std", 1.0)):
        s = meta.get(key)
        if s is None:
            out.append(np.full(c, default, np.float32))
            continue
        try:
            v = [np.float32(float(t)) for t in s.split(",")]
        except ValueError:
            raise Refusal(f"{path}: metadata '{key}' = {s!r} is not three numbers 'a,b,c'") from None
        if len(v) != 3 or not all(np.isfinite(v)):
            raise Refusal(f"{path}: metadata '{key}' = {s!r} is not three finite numbers 'a,b,c'")
        out.append(np.array(v[:c] + [np.float32(default)] * (c - len(v[:c])), np.float32))
    return out[0], out[1]


def normalize(images, meta, path="checkpoint"):
    """uint8 images (N, C, H, W) -> the float32 input sqakd feeds the model:
    (pixel/255 - mean[c]) / std[c], each step in float32 (host/data/augment.c sq_norm_lut)"""
    mean, std = norm_of(meta, path)
    lut = ((np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)) - mean[:, None]) / std[:, None]
    images = np.asarray(images, dtype=np.uint8)
    return np.stack([lut[ch][images[:, ch]] for ch in range(images.shape[1])], axis=1).astype(np.float32)


def build_torch_model(meta, path="checkpoint", arch=None):
    """The PyTorch twin of the network a checkpoint's metadata describes: tools/torch_models.py's
    architecture, its quantized layers replaced by tools/torch_quant.py's (quantizer, bits,
    --quant-first-last, deltas), eval-mode BatchNorm as sqakd computes it. Raises Refusal for what
    it cannot build (an imported 'graph', an unknown arch or quantizer)."""
    _tools_path()
    import torch_models
    import torch_quant
    arch = arch or meta.get("arch")
    if not arch:
        raise Refusal(f"{path} has no 'arch' metadata; pass --arch NAME")
    if arch == "graph":
        raise Refusal(f"{path} holds a network imported from ONNX (arch 'graph'), which has no PyTorch "
                      f"twin here (tools/torch_models.py builds the zoo: {', '.join(torch_models.ARCHS)}); "
                      f"run it with 'sqakd infer', or 'sqakd export' it and load the .onnx file")
    if arch not in torch_models.ARCHS:
        raise Refusal(f"{path}: arch {arch!r} has no PyTorch twin in tools/torch_models.py "
                      f"(known: {', '.join(torch_models.ARCHS)})")
    if meta.get("quant_per_channel", "0") != "0" or meta.get("quant_bits_map"):
        what = "per-channel weight quantizers" if meta.get("quant_per_channel", "0") != "0" else "a per-layer bits map"
        raise Refusal(f"{path} is a student with {what} (docs/granularity.md), which the PyTorch twins "
                      f"(tools/torch_quant.py) do not build yet; run it with 'sqakd eval' / 'sqakd infer', or "
                      f"'sqakd export' it and load the .onnx file")
    c, h, w = _shape(meta, path)
    classes = _meta_int(meta, "classes", path, 1, 1000)
    kind = meta.get("quantizer", "none")
    if kind not in ("none",) + torch_quant.KINDS:
        raise Refusal(f"{path}: metadata 'quantizer' = {kind!r} is none of none, "
                      f"{', '.join(torch_quant.KINDS)}")
    model = torch_models.build_model(arch, c, classes, h, w)
    if kind != "none":
        wbits = _meta_int(meta, "wbits", path, 1, 8)
        abits = _meta_int(meta, "abits", path, 1, 8)
        first_last = _meta_int(meta, "quant_first_last", path, 0, 1, default=0)
        try:
            dw, da = (float(meta.get(k, "0")) for k in ("delta_w", "delta_a"))
        except ValueError:
            raise Refusal(f"{path}: metadata 'delta_w' / 'delta_a' is not a number") from None
        torch_quant.quantize_model(model, arch, kind, wbits, abits, bool(first_last), dw, da)
    torch_quant.sqakd_numerics(model)
    return model.eval()


def describe(meta):
    kind = meta.get("quantizer", "none")
    if kind == "none":
        return f"{meta.get('arch')} full-precision"
    fl = " (first/last quantized)" if meta.get("quant_first_last") == "1" else ""
    return f"{meta.get('arch')} {kind} W{meta.get('wbits')}A{meta.get('abits')}{fl}"


def strict_diff(model_sd, tensors):
    """(checkpoint tensors the model has no place for, model tensors the checkpoint lacks, tensors
    whose shapes differ as 'name ckpt_shape vs model_shape')"""
    dropped = [k for k in tensors if k not in model_sd]
    unset = [k for k in model_sd if k not in tensors]
    bad = [f"{k} {list(tensors[k].shape)} vs {list(model_sd[k].shape)}" for k in tensors
           if k in model_sd and tuple(tensors[k].shape) != tuple(model_sd[k].shape)]
    return dropped, unset, bad


def _refuse_diff(path, what, dropped, unset, bad):
    parts = []
    if dropped:
        parts.append(f"{len(dropped)} tensor(s) of the checkpoint would be dropped ({_names(dropped)})")
    if unset:
        parts.append(f"{len(unset)} tensor(s) of the model would stay unset ({_names(unset)})")
    if bad:
        parts.append(f"{len(bad)} shape(s) differ ({_names(bad)})")
    raise Refusal(f"{path}: refusing a lossy load into the PyTorch {what}: " + "; ".join(parts))


def load_torch_model(path, arch=None):
    """(model, metadata): the checkpoint's network as a PyTorch module in eval mode, every tensor
    loaded and every model tensor set (Refusal otherwise). A quantized student comes with its
    quantizers (tools/torch_quant.py) and reproduces sqakd's forward."""
    import torch
    tensors, meta = load(path)
    model = build_torch_model(meta, path, arch)
    sd = model.state_dict()
    dropped, unset, bad = strict_diff(sd, tensors)
    if dropped or unset or bad:
        _refuse_diff(path, describe(dict(meta, arch=arch or meta.get("arch"))), dropped, unset, bad)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).to(sd[k].dtype)
                           for k, v in tensors.items()}, strict=True)
    return model.eval(), meta


def _atomic(path, write):
    """write(f) into a fresh temporary file beside path (created exclusively, unpredictable name),
    fsync, rename onto path, fsync the directory"""
    import tempfile
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def into_torch(args):
    try:
        import torch
    except ImportError as e:
        raise Refusal(f"--into-torch needs PyTorch, which {sys.executable} cannot import ({e}); "
                      f"make deps-py installs Debian's") from None
    path = args.into_torch
    model, meta = load_torch_model(path, args.arch)
    n = len(model.state_dict())
    print(f"ok\t{path}: {describe(meta)} ({meta.get('role', 'teacher')}): {n} tensors loaded into "
          f"the PyTorch twin, none dropped, none unset")
    if bool(args.input) != bool(args.out):
        raise Refusal("--input X.npy and --out Y.npy go together")
    if args.input:
        x = np.load(args.input, allow_pickle=False)
        c, h, w = _shape(meta, path)
        if x.dtype != np.float32 or x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise Refusal(f"--input {args.input}: {x.dtype} {list(x.shape)}, want float32 "
                          f"[N, {c}, {h}, {w}] (normalised as the model was trained)")
        with torch.no_grad():
            y = torch.cat([model(torch.from_numpy(x[i:i + 256])) for i in range(0, len(x), 256)])
        _atomic(args.out, lambda f: np.save(f, y.numpy()))
        print(f"ok\twrote {list(y.shape)} logits to {args.out}")
    if args.save:
        obj = {"state_dict": model.state_dict(), "sqakd_meta": {k: meta[k] for k in LIKE_KEYS if k in meta}}
        _atomic(args.save, lambda f: torch.save(obj, f))
        print(f"ok\twrote {args.save} (state_dict and sqakd_meta: --from-torch reads both back)")
    return 0


def _norm_arg(flag, s, c):
    try:
        v = [float(t) for t in s.split(",")]
    except ValueError:
        raise Refusal(f"{flag} {s!r} is not a comma-separated list of numbers") from None
    if len(v) == 1 and c > 1:
        v = v * c
    if len(v) != c or not all(np.isfinite(v)) or (flag == "--std" and not all(x > 0 for x in v)):
        raise Refusal(f"{flag} {s!r}: give {c} finite number(s){' > 0' if flag == '--std' else ''}, "
                      f"one per input channel")
    pad = 0.0 if flag == "--mean" else 1.0
    return ",".join(str(np.float32(x)) for x in v + [pad] * (3 - c))


def from_torch(args):
    import torch
    src, dst = args.from_torch
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises many kinds here)
        if "Weights only load failed" not in str(e):
            raise Refusal(f"{src}: torch.load failed: {str(e).splitlines()[0]}") from None
        raise Refusal(f"{src} holds pickled Python objects besides tensors (a whole nn.Module?), which "
                      f"would run code on load; save model.state_dict() instead") from None
    ref, ref_from, ref_tensors = {}, None, None
    if isinstance(obj, dict) and isinstance(obj.get("sqakd_meta"), dict):
        ref, ref_from = {k: str(v) for k, v in obj["sqakd_meta"].items()}, f"{src}'s sqakd_meta"
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise Refusal(f"{src} holds no state_dict")
    tensors = {}
    for name, t in obj.items():
        if not torch.is_tensor(t):
            continue
        if name.startswith("module."):
            name = name[len("module."):]
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.float()
        elif t.dtype == torch.bool:
            t = t.to(torch.uint8)
        elif t.dtype not in (torch.int64, torch.int32, torch.uint8):
            t = t.to(torch.int64)
        tensors[name] = t.contiguous().numpy()
    if args.like:
        ref_tensors, lm = load(args.like)
        ref, ref_from = {k: lm[k] for k in LIKE_KEYS if k in lm}, args.like
    meta = {"format": "sqakd", "format_version": "1"}
    meta.update(ref)
    norm_from = ref_from if "norm_mean" in ref and "norm_std" in ref else None
    if args.dataset:
        if args.dataset not in DATASETS:
            raise Refusal(f"--dataset {args.dataset!r}: known ones are {', '.join(DATASETS)} (for other "
                          f"data pass --mean and --std)")
        mean, std, shape, classes = DATASETS[args.dataset]
        c = int(shape.split(",")[0])
        meta.update(norm_mean=_norm_arg("--mean", mean, c), norm_std=_norm_arg("--std", std, c),
                    dataset=args.dataset)
        meta.setdefault("input_shape", shape)
        meta.setdefault("classes", str(classes))
        norm_from = f"--dataset {args.dataset}"
    if args.arch:
        meta["arch"] = args.arch
    if args.classes:
        meta["classes"] = str(args.classes)
    if args.input_shape:
        meta["input_shape"] = args.input_shape
    if args.mean is not None or args.std is not None:
        if args.mean is None or args.std is None:
            raise Refusal("--mean and --std go together")
        c = _shape(meta, "--input-shape")[0] if "input_shape" in meta else len(args.mean.split(","))
        meta.update(norm_mean=_norm_arg("--mean", args.mean, c), norm_std=_norm_arg("--std", args.std, c))
        norm_from = "--mean/--std"
    for kv in args.meta or []:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise Refusal(f"--meta {kv!r} is not KEY=VALUE")
        meta[k] = v
        if k in ("norm_mean", "norm_std"):
            norm_from = "--meta"
    missing = [k for k in ("arch", "input_shape", "classes") if k not in meta]
    if missing:
        raise Refusal(f"{src}: the checkpoint needs {', '.join(missing)}: pass --like CKPT (the sqakd "
                      f"checkpoint this network came from), or --arch, --classes and --input-shape "
                      f"(or --dataset for the last two)")
    if "norm_mean" not in meta or "norm_std" not in meta:
        raise Refusal(f"{src}: the input normalisation is unknown (sqakd would use mean 0, std 1, silently "
                      f"wrong for a network trained on normalised images): pass --like CKPT (the sqakd "
                      f"checkpoint it came from), --dataset {'|'.join(DATASETS)}, or --mean M --std S "
                      f"(per channel, of pixels in [0, 1])")
    norm_of(meta, "the normalisation")
    meta.setdefault("role", "teacher" if meta.get("quantizer", "none") == "none" else "student")
    meta.setdefault("quantizer", "none")
    # EWGS deltas a PyTorch model keeps as non-persistent buffers come from the metadata
    if meta["quantizer"] != "none":
        for k in [k for k in tensors if k.endswith((".lW", ".alphaA", ".sW", ".sA", ".lA"))]:
            layer = k.rpartition(".")[0]
            for r, dk in (("W", "delta_w"), ("A", "delta_a")):
                name = f"{layer}.bkwd_scaling_factor{r}"
                if name not in tensors:
                    tensors[name] = np.array(float(meta.get(dk, "0")), np.float32)
    # the tensors must be exactly the network's: the reference checkpoint's, else the twin's
    if ref_tensors is not None and meta.get("arch") == ref.get("arch"):
        want = {k: v for k, v in ref_tensors.items()}
        what = f"network of {args.like}"
    elif meta["arch"] != "graph":
        try:
            want = build_torch_model(meta, dst).state_dict()
        except Refusal as e:
            raise Refusal(f"cannot check the tensors against the architecture: {e}") from None
        what = describe(meta)
    else:
        want = None
    if want is not None:
        dropped, unset, bad = strict_diff(want, tensors)
        if dropped or unset or bad:
            parts = []
            if dropped:
                parts.append(f"{len(dropped)} tensor(s) of {src} have no place in the {what} "
                             f"({_names(dropped)})")
            if unset:
                parts.append(f"{len(unset)} tensor(s) of the {what} are missing ({_names(unset)})")
            if bad:
                parts.append(f"{len(bad)} shape(s) differ ({_names(bad)})")
            raise Refusal(f"{src}: refusing to write {dst}: " + "; ".join(parts))
    save(dst, tensors, meta)
    print(f"ok\twrote {len(tensors)} tensors to {dst} ({describe(meta)}, normalisation mean "
          f"{meta['norm_mean']} std {meta['norm_std']} from {norm_from})")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", metavar="FILE")
    g.add_argument("--into-torch", metavar="FILE")
    g.add_argument("--from-torch", nargs=2, metavar=("MODEL_PT", "OUT"))
    ap.add_argument("--arch", help="architecture (--into-torch: overrides the metadata's)")
    ap.add_argument("--input", metavar="X.npy", help="--into-torch: run the model on this float32 "
                    "[N, C, H, W] array (normalised)")
    ap.add_argument("--out", metavar="Y.npy", help="--into-torch: write the logits of --input here")
    ap.add_argument("--save", metavar="M.pt", help="--into-torch: torch.save the state_dict with the "
                    "sqakd metadata")
    ap.add_argument("--like", metavar="CKPT", help="--from-torch: copy the network's metadata "
                    "(arch, shape, classes, normalisation, quantizer) from this sqakd checkpoint")
    ap.add_argument("--dataset", help=f"--from-torch: the normalisation (and shape, classes) sqakd "
                    f"uses for {', '.join(DATASETS)}")
    ap.add_argument("--mean", metavar="M[,M,M]", help="--from-torch: per-channel mean of [0, 1] pixels")
    ap.add_argument("--std", metavar="S[,S,S]", help="--from-torch: per-channel std of [0, 1] pixels")
    ap.add_argument("--classes", type=int)
    ap.add_argument("--input-shape", metavar="C,H,W")
    ap.add_argument("--meta", action="append", metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        if args.check:
            return check(args.check)
        if args.into_torch:
            return into_torch(args)
        return from_torch(args)
    except Refusal as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, FormatError, ValueError, LookupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
