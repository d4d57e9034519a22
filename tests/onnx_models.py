"""A real, tiny ONNX model whose tensors live in a separate file (ONNX "external data")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHTS = np.arange(8, dtype=np.float32).reshape(4, 2)


def external_onnx(folder: Path, location: str = "tensors.bin") -> Path:
    """A real ONNX model (Y = X·W) with Ultralytics metadata, W stored in ``location``.

    Built with the ``onnx`` package (a dev dependency); a ``location`` other than the default
    is written into the proto afterwards, as a hostile or careless file would carry it.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = numpy_helper.from_array(WEIGHTS, "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": "{0: 'a', 1: 'b'}", "task": "detect"})
    path = folder / "model.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="tensors.bin",
        size_threshold=0,
    )
    if location != "tensors.bin":  # point the tensor elsewhere, as a hostile file would
        m = onnx.load(str(path), load_external_data=False)
        for entry in m.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        path.write_bytes(m.SerializeToString())
    return path
