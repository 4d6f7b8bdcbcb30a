import pickle
import struct
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest

from kloset.core.errors import ModelError
from kloset.core.models.backbone import default_weights_path
from kloset.core.models.torch_checkpoint import read_state_dict


def _fake_torch(monkeypatch):
    """Just enough of a `torch` module for pickle to name its globals the way torch.save does."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return FloatStorage, _rebuild_tensor_v2


class _Tensor:
    def __init__(self, rebuild, storage, offset, size, stride):
        self.args = (rebuild, (storage, offset, size, stride, False, OrderedDict()))

    def __reduce__(self):
        return self.args


def _write_legacy(path, monkeypatch, storage_values: np.ndarray, tensors: dict) -> None:
    storage_type, rebuild = _fake_torch(monkeypatch)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", storage_type, "0", "cpu", len(storage_values)) if obj == "STORAGE" else None

    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        state = OrderedDict((name, _Tensor(rebuild, "STORAGE", *layout)) for name, layout in tensors.items())
        Pickler(f, protocol=2).dump(state)
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", len(storage_values)) + storage_values.astype("<f4").tobytes())


def test_reads_offsets_and_strides_of_tensors_sharing_one_storage(tmp_path, monkeypatch):
    path = tmp_path / "tiny.pth"
    values = np.arange(10, dtype=np.float32)
    _write_legacy(
        path, monkeypatch, values, {"w": (0, (2, 3), (3, 1)), "w_t": (0, (3, 2), (1, 3)), "b": (6, (4,), (1,))}
    )
    state = read_state_dict(path)
    assert np.array_equal(state["w"], [[0, 1, 2], [3, 4, 5]])
    assert np.array_equal(state["w_t"], [[0, 3], [1, 4], [2, 5]])
    assert np.array_equal(state["b"], [6, 7, 8, 9]) and state["b"].dtype == np.float32


def test_refuses_a_pickle_that_would_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return os.system, ("echo pwned",)

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for obj in (1, 1001, {}, Evil()):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(ModelError, match="no place in a state dict"):
        read_state_dict(path)


def test_a_file_that_is_not_a_checkpoint_is_a_model_error(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        read_state_dict(path)


def test_the_packaged_imagenet_checkpoint_is_complete():
    state = read_state_dict(default_weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert sum(name.endswith("_depthwise_conv.weight") for name in state) == 16
