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
    load_checkpoint.py --into-torch FILE [--arch NAME]
        builds the model from tools/torch_models.py (arch and classes from the metadata), loads the
        tensors with load_state_dict(strict=False) and prints missing/unexpected keys. When torch
        or torch_models.py is unavailable it prints "skip: <reason>" and exits 0.
    load_checkpoint.py --from-torch MODEL.pt OUT.safetensors [--arch A --classes N
                       --input-shape C,H,W] [--meta KEY=VALUE ...]
        converts a PyTorch state_dict (or a pickled module / {"state_dict": ...} dict) to our
        format: floating tensors as F32, int64 as I64, int32 as I32, uint8/bool as U8; a
        "module." prefix (DataParallel) is stripped.
"""
import argparse
import inspect
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


def _call_with_known_kwargs(fn, args, candidates):
    """Calls fn(*args, **kw) with the candidate keyword arguments its signature accepts."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kw = candidates
    else:
        kw = {k: v for k, v in candidates.items() if k in params}
    return fn(*args, **kw)


def _build_torch_model(torch_models, arch, classes, in_shape):
    """Builds arch with the constructor conventions a model zoo module commonly offers
    (build_model(arch, ...), MODELS[arch](...), or a callable named arch), passing the class count
    and input shape under the keyword names the constructor accepts."""
    cand = {}
    if classes:
        cand.update(classes=classes, num_classes=classes)
    if in_shape:
        try:
            c, h, w = (int(x) for x in in_shape.split(","))
            cand.update(in_ch=c, in_channels=c, h=h, w=w)
        except ValueError:
            pass
    for fn_name in ("build_model", "build", "create_model", "get_model"):
        fn = getattr(torch_models, fn_name, None)
        if callable(fn):
            return _call_with_known_kwargs(fn, (arch,), cand)
    table = getattr(torch_models, "MODELS", None)
    ctor = table.get(arch) if isinstance(table, dict) else getattr(torch_models, arch, None)
    if not callable(ctor):
        raise LookupError(f"tools/torch_models.py has no model named {arch!r}")
    return _call_with_known_kwargs(ctor, (), cand)


def into_torch(path, arch=None):
    try:
        import torch  # noqa: F401
    except ImportError as e:
        print(f"skip: torch is not importable ({e})")
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import torch_models
    except ImportError as e:
        print(f"skip: tools/torch_models.py is not available ({e})")
        return 0
    tensors, meta = load(path)
    arch = arch or meta.get("arch")
    if not arch:
        print(f"error: {path} has no 'arch' metadata; pass --arch", file=sys.stderr)
        return 1
    classes = int(meta["classes"]) if meta.get("classes", "").isdigit() else None
    model = _build_torch_model(torch_models, arch, classes, meta.get("input_shape"))
    result = model.load_state_dict(to_torch_state_dict(tensors), strict=False)
    print(f"arch\t{arch}\tloaded {len(tensors)} tensors")
    for k in result.missing_keys:
        print(f"missing\t{k}")
    for k in result.unexpected_keys:
        print(f"unexpected\t{k}")
    print(f"ok\t{len(result.missing_keys)} missing\t{len(result.unexpected_keys)} unexpected")
    return 0


def from_torch(src, dst, args):
    import torch
    obj = torch.load(src, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        print(f"error: {src} holds no state_dict", file=sys.stderr)
        return 1
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
    meta = {}
    if args.arch:
        meta.update(format="sqakd", format_version="1", arch=args.arch, role="teacher")
    if args.classes:
        meta["classes"] = str(args.classes)
    if args.input_shape:
        meta["input_shape"] = args.input_shape
    for kv in args.meta or []:
        k, sep, v = kv.partition("=")
        if not sep:
            print(f"error: --meta {kv!r} is not KEY=VALUE", file=sys.stderr)
            return 1
        meta[k] = v
    save(dst, tensors, meta)
    print(f"ok\twrote {len(tensors)} tensors to {dst}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", metavar="FILE")
    g.add_argument("--into-torch", metavar="FILE")
    g.add_argument("--from-torch", nargs=2, metavar=("MODEL_PT", "OUT"))
    ap.add_argument("--arch")
    ap.add_argument("--classes", type=int)
    ap.add_argument("--input-shape", metavar="C,H,W")
    ap.add_argument("--meta", action="append", metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        if args.check:
            return check(args.check)
        if args.into_torch:
            return into_torch(args.into_torch, args.arch)
        return from_torch(args.from_torch[0], args.from_torch[1], args)
    except (OSError, FormatError, ValueError, LookupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
