"""ONNX ``TensorProto`` files (``input_0.pb``, as ONNX's test data ships beside models) read
as arrays, or one line: whatever their bytes, no traceback reaches the build."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from iree_build.errors import IreeBuildError

if TYPE_CHECKING:  # numpy and onnx are imported when a file is read
    import numpy as np


def read_tensor_proto(path: str) -> np.ndarray:
    """An ONNX ``TensorProto`` file (``input_0.pb``, as shipped beside ONNX models)."""

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise IreeBuildError(
            f"reading {os.path.relpath(path)} needs the onnx package: pip install 'iree-build-scons[onnx]'"
        ) from None
    tensor = onnx.TensorProto()
    try:
        with open(path, "rb") as f:
            tensor.ParseFromString(f.read())
        from iree_build.values.arrays import c_order

        return c_order(numpy_helper.to_array(tensor))  # a 0-d tensor stays 0-d
    except OSError as e:
        raise IreeBuildError(f"cannot read {os.path.relpath(path)}: {e.strerror}") from None
    except MemoryError:
        raise IreeBuildError(
            f"{os.path.relpath(path)}: the tensor it describes does not fit in memory"
        ) from None
    except Exception as e:  # protobuf's DecodeError, a shape its data does not fill, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise IreeBuildError(f"{os.path.relpath(path)} is not an ONNX TensorProto file ({first})") from None
