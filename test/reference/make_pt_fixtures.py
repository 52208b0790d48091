"""Writes test/fixtures/pt/: small torch.save checkpoints for the .pt reader.

Run with Debian's /usr/bin/python3 (python3-torch), never the pyenv python:
    /usr/bin/python3 test/reference/make_pt_fixtures.py

Valid files <case>.pt come with <case>.expected.safetensors: the same tensors,
made contiguous, under their flattened names (nested dict keys joined with
'.', lists of tensors by index), and the non-tensor leaves as JSON strings in
the metadata, which is what src/io/pt.ts must produce bit for bit.

Hostile files must be refused without running anything. The payloads are live:
each one is loaded here with torch.load (the real unpickler) in a subprocess to
prove that it touches $KANDINSKY_PT_MARKER, so the TypeScript test that sees no
marker is testing a working exploit.
"""
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st import save_file  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "pt")
MARKER_CMD = 'touch "$KANDINSKY_PT_MARKER"'


def to_json(v):
    if isinstance(v, float) and not math.isfinite(v):
        return json.dumps("nan" if math.isnan(v) else "inf" if v > 0 else "-inf")
    if isinstance(v, torch.dtype):
        return json.dumps(str(v))
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    return json.dumps(v, separators=(",", ":"))


def has_tensor(v):
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, dict):
        return any(has_tensor(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(has_tensor(x) for x in v)
    return False


def flatten(v, key, tensors, meta):
    """The reader's flattening rule (see the comment at the top of src/io/pt.ts)."""
    if isinstance(v, torch.Tensor):
        tensors[key] = v.detach()
    elif isinstance(v, dict) or (isinstance(v, (list, tuple)) and (key == "" or has_tensor(v))):
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in items:
            flatten(x, f"{key}.{k}" if key else str(k), tensors, meta)
    else:
        meta[key] = to_json(v)


def save_case(name, obj, **kw):
    path = os.path.join(OUT, f"{name}.pt")
    torch.save(obj, path, **kw)
    tensors, meta = {}, {}
    flatten(obj, "", tensors, meta)
    # Expected values come from torch.load of the file just written, so the
    # comparison is against what torch itself reads back.
    back = {}
    flatten(torch.load(path), "", back, {})
    assert list(back) == list(tensors), (list(back), list(tensors))
    for k in tensors:
        assert back[k].dtype == tensors[k].dtype and back[k].shape == tensors[k].shape
        assert torch.equal(back[k], tensors[k]) or (back[k].isnan() == tensors[k].isnan()).all()
    save_file(back, os.path.join(OUT, f"{name}.expected.safetensors"), metadata=meta)
    print(f"{name}.pt: {len(tensors)} tensors, {len(meta)} metadata, {os.path.getsize(path)} bytes")


def torch_like_zip(name, pickle_bytes, extra=()):
    """A zip laid out like torch's (archive/data.pkl, archive/version), with extra (name, bytes) entries."""
    path = os.path.join(OUT, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        # Fixed timestamps keep the files byte-identical from run to run.
        for n, b in [("archive/data.pkl", pickle_bytes), ("archive/version", b"3\n"), *extra]:
            z.writestr(zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0)), b)
    print(f"{name}: {os.path.getsize(path)} bytes")


def check_live(name):
    """Loads a hostile file with torch.load in a subprocess; the payload must create the marker."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = os.path.join(tmp, "marker")
        env = dict(os.environ, KANDINSKY_PT_MARKER=marker)
        code = "import sys, torch\ntry:\n    torch.load(sys.argv[1])\nexcept Exception:\n    pass\n"
        subprocess.run([sys.executable, "-c", code, os.path.join(OUT, name)], env=env, check=True, capture_output=True)
        assert os.path.exists(marker), f"{name}: payload did not run under torch.load"
    print(f"{name}: payload verified live under torch.load")


class SystemPayload:
    def __reduce__(self):
        return (os.system, (MARKER_CMD,))


class EvalPayload:
    def __reduce__(self):
        return (eval, (f"__import__('os').system({MARKER_CMD!r})",))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)

    save_case("dtypes", {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(2, 3).half(),
        "bf16": torch.randn(4).bfloat16(),
        "f64": torch.randn(2, 2).double(),
        "i64": torch.arange(-3, 3),
        "i32": torch.tensor([-(2**31), 0, 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, 1, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
    })

    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Linear(4, 2))
    save_case("nested", {
        "unet": module.state_dict(),  # an OrderedDict carrying _metadata (BUILD)
        "projections": collections.OrderedDict([("text.weight", torch.randn(3, 2)), ("text.bias", torch.randn(3))]),
        "null_embedding": torch.randn(1, 4),
        "blocks": [torch.randn(2), torch.randn(3).half()],
        "step": 1234,
        "name": "kandinsky",
        "none": None,
        "lr": 0.25,
        "flag": True,
        "tags": ["a", "b", 3],
        "big": 2**70,
        "nan": float("nan"),
        "dtype": torch.float16,
        "size": torch.Size([2, 3]),
        "config": {"channels": 4, "empty": {}},
    })

    base = torch.arange(24, dtype=torch.float32)
    grid = base.view(4, 6)
    save_case("views", {
        "grid": grid,
        "rows": grid[1:3],  # same storage, offset 6, contiguous
        "transposed": grid.t(),  # same storage, strides (1, 6)
        "strided": grid[1:, 1::2],  # same storage, offset 7, strides (6, 2)
        "expanded": torch.arange(3.0).expand(2, 3),  # stride 0
        "permuted": torch.randn(2, 3, 4).permute(2, 0, 1),
        "half_t": torch.randn(3, 4).half().t(),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.randn(2, 2)),
    })

    save_case("protocol4", collections.OrderedDict([
        ("weight", torch.randn(2, 3)),
        ("inner", {"bias": torch.randn(3).bfloat16(), "n": 7}),
    ]), pickle_protocol=4)

    # --- hostile files -------------------------------------------------------
    torch.save({"weight": torch.randn(2), "payload": SystemPayload()}, os.path.join(OUT, "evil_system.pt"))
    check_live("evil_system.pt")
    torch.save({"weight": torch.randn(2), "payload": EvalPayload()}, os.path.join(OUT, "evil_eval.pt"))
    check_live("evil_eval.pt")
    torch.save({"weight": torch.randn(2), "payload": SystemPayload()}, os.path.join(OUT, "evil_system_p4.pt"), pickle_protocol=4)
    check_live("evil_system_p4.pt")

    torch.save(torch.nn.Linear(2, 2), os.path.join(OUT, "whole_module.pt"))
    # (storage keys in the legacy format are object ids, so this file differs from run to run)
    torch.save({"w": torch.randn(2)}, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(OUT, "torchscript.pt"))

    with open(os.path.join(OUT, "dtypes.pt"), "rb") as f:
        whole = f.read()
    with open(os.path.join(OUT, "truncated.pt"), "wb") as f:
        f.write(whole[: len(whole) // 2])

    empty_dict = b"\x80\x02}q\x00."
    torch_like_zip("traversal.pt", empty_dict, [("../evil.txt", b"pwned\n")])

    # {'deep': [[[...]]]} nested 5000 lists deep: EMPTY_LIST x N, APPEND x N-1.
    n = 5000
    deep = b"\x80\x02}X\x04\x00\x00\x00deep" + b"]" * n + b"a" * (n - 1) + b"s."
    torch_like_zip("deep.pt", deep)


if __name__ == "__main__":
    main()
