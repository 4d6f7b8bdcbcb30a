"""Reading a PyTorch state dict into numpy arrays without installing torch.

The backbone's ImageNet weights ship as a PyTorch checkpoint in the legacy (pre-1.6) serialisation: a few
pickles (magic number, protocol, system info, the state dict with storages as persistent ids, the storage
keys) followed by each storage's raw bytes. Torch is several GB and brings nothing else kloset needs, so the
format is read here. Unpickling is restricted to the handful of globals a state dict uses, so a crafted
file cannot run code.
"""

import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

from kloset.core.errors import ModelError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *_):
    return storage, int(offset), tuple(size), tuple(stride)


class _StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(f"{module}.{name} has no place in a state dict")

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, element count)
        return pid[1].name, str(pid[2])


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """{parameter name: array} of a legacy-format PyTorch state dict; ModelError if the file is not one."""
    try:
        with path.open("rb") as f:
            for _ in range(3):  # magic number, protocol version, system info
                pickle.load(f)
            tensors = _StateDictUnpickler(f).load()
            keys = pickle.load(f)
            dtypes = {key: _STORAGE_DTYPES[kind] for (kind, key), *_ in tensors.values()}
            storages = {}
            for key in keys:
                (count,) = struct.unpack("<q", f.read(8))
                dtype = np.dtype(dtypes[str(key)])
                storages[str(key)] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
        return {name: _view(storages[key], offset, size, stride)
                for name, ((_, key), offset, size, stride) in tensors.items()}  # fmt: skip
    except (OSError, EOFError, pickle.UnpicklingError, struct.error, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"cannot read {path} as a PyTorch state dict (legacy format): {exc}") from None


def _view(storage: np.ndarray, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    strides = [s * storage.itemsize for s in stride]
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=strides).copy()
