"""ember.onnx fed something wrong: layers with no ONNX form, bad arguments, and malformed,
truncated, unsupported or hostile files. Each must give one clear error, never a traceback from
deep inside protobuf or a silently wrong model; the model's training flags must survive export."""
import io
import pickle

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import ember  # noqa: E402
import ember.nn as nn  # noqa: E402
from ember.onnx import OnnxExportError, OnnxImportError, export, load_model  # noqa: E402


def exported(model, x):
    f = io.BytesIO()
    export(model, x, f)
    return f.getvalue()


# ---- export --------------------------------------------------------------------------------
def test_locally_connected_has_no_onnx_form_and_is_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.LocallyConnected2d(2, 3, (6, 6), 3), nn.Flatten())
    with pytest.raises(OnnxExportError, match=r"^op LocallyConnected2d \(in module '1' \(LocallyConnected2d\)\) "
                                              r"has no ONNX form in ember's exporter; ONNX export supports: Add, "):
        exported(model, ember.randn(1, 1, 8, 8))


def test_layer_norm_is_named_too():
    with pytest.raises(OnnxExportError, match=r"op LayerNorm \(in module '0' \(LayerNorm\)\)"):
        exported(nn.Sequential(nn.LayerNorm(4)), ember.randn(2, 4))


def test_batchnorm_without_running_stats_is_refused():
    with pytest.raises(OnnxExportError, match="track_running_stats=False"):
        exported(nn.BatchNorm1d(3, track_running_stats=False), ember.randn(4, 3))


def test_adaptive_pool_with_sizes_that_do_not_divide_is_refused():
    with pytest.raises(OnnxExportError, match="AdaptiveAvgPool2d from 7x7 to 3x3 has no ONNX form"):
        exported(nn.AdaptiveAvgPool2d(3), ember.randn(1, 1, 7, 7))


@pytest.mark.parametrize("call, err, msg", [
    (lambda: export("lenet", ember.randn(1, 4), io.BytesIO()), TypeError, "model must be an ember.nn.Module, got str"),
    (lambda: export(nn.Linear(4, 2), np.zeros((1, 4)), io.BytesIO()), TypeError,
     "args must be a Tensor or a tuple of Tensors"),
    (lambda: export(nn.Linear(4, 2), ember.randn(1, 4), io.BytesIO(), opset_version=13), ValueError,
     "opset_version must be an int from 17 to"),
    (lambda: export(nn.Linear(4, 2), ember.randn(1, 4), io.BytesIO(), dynamic_axes={"x": [0]}), ValueError,
     "dynamic_axes names 'x', which is not an input or output name (input, output)"),
    (lambda: export(nn.Linear(4, 2), ember.randn(1, 4), io.BytesIO(), input_names=["a", "b"]), ValueError,
     "2 input_names for 1 inputs"),
])
def test_bad_export_arguments(call, err, msg):
    with pytest.raises(err) as e:
        call()
    assert msg in str(e.value)


def test_export_restores_each_modules_training_flag():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.train()
    model[2].eval()
    before = [m.training for m in model.modules()]
    mean = model[2].running_mean.numpy().copy()
    data = exported(model, ember.randn(8, 4))
    assert [m.training for m in model.modules()] == before
    np.testing.assert_array_equal(model[2].running_mean.numpy(), mean)   # no statistics updated
    assert "Dropout" not in {n.op_type for n in onnx.load_from_string(data).graph.node}


def test_export_writes_a_path_and_load_model_reads_it(tmp_path):
    path = tmp_path / "m.onnx"
    lin = nn.Linear(3, 2)
    export(lin, ember.randn(1, 3), path)
    loaded = load_model(path)
    assert [type(m).__name__ for m in loaded] == ["Linear"]
    np.testing.assert_array_equal(loaded[0].weight.numpy(), lin.weight.numpy())


# ---- load: malformed, truncated, hostile -----------------------------------------------------
GOOD = None


def good_bytes():
    global GOOD
    if GOOD is None:
        GOOD = exported(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)),
                        ember.randn(1, 1, 4, 4))
    return GOOD


@pytest.mark.parametrize("data, msg", [
    (b"", "ONNX data: the file is empty"),
    (b"this is not an ONNX file at all, just some text\n", "ONNX data: not an ONNX model, or a truncated one"),
    (bytes(range(256)) * 4, "ONNX data: not an ONNX model, or a truncated one"),
])
def test_garbage_is_not_onnx(data, msg):
    with pytest.raises(OnnxImportError) as e:
        load_model(data)
    assert str(e.value).startswith(msg)


def test_every_truncation_is_caught():
    data = good_bytes()
    cuts = sorted(set(list(range(1, len(data), max(1, len(data) // 40))) + [len(data) - k for k in range(1, 12)]))
    for cut in cuts:
        with pytest.raises(OnnxImportError, match="not (an|a valid) ONNX model, or a truncated one"):
            load_model(data[:cut])


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "nope.onnx"))


def test_a_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    path = tmp_path / "model.onnx"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(OnnxImportError):
        load_model(str(path))
    assert not marker.exists()


def graph_with(nodes, inits=(), opset=17, inputs=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])
    g = helper.make_graph(nodes, "g", inputs or [x], [y], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_ops_are_listed_all_at_once():
    m = graph_with([helper.make_node("Erf", ["x"], ["a"], name="e1"),
                    helper.make_node("Shape", ["a"], ["s"], name="s1"),
                    helper.make_node("Erf", ["a"], ["b"], name="e2"), helper.make_node("Relu", ["b"], ["c"], name="r"),
                    helper.make_node("Abs", ["c"], ["y"], name="a1")])
    with pytest.raises(OnnxImportError) as e:
        load_model(m.SerializeToString())
    assert str(e.value).startswith("ONNX data: ember cannot build 3 op types of this model: Erf (2 nodes: e1, e2); "
                                   "Shape (1 node: s1); Abs (1 node: a1). Supported ops: Add, AveragePool, ")


def test_custom_domain_ops_are_unsupported():
    m = graph_with([helper.make_node("FusedConv", ["x"], ["y"], name="fc", domain="com.microsoft")])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(OnnxImportError, match=r"com.microsoft::FusedConv \(1 node: fc\)"):
        load_model(m.SerializeToString())


@pytest.mark.parametrize("location", ["weights.bin", "../../etc/passwd"])
def test_external_weights_are_refused(location):
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    m = graph_with([helper.make_node("Conv", ["x", "w"], ["y"], name="c")], [w])
    with pytest.raises(OnnxImportError, match="initializer 'w' is stored in an external file"):
        load_model(m.SerializeToString())


@pytest.mark.parametrize("attrs, msg", [
    (dict(pads=[0, 0, 1, 1]), "node c: asymmetric pads [0, 0, 1, 1] are not supported"),
    (dict(auto_pad="SAME_UPPER"), "node c: auto_pad=b'SAME_UPPER' is not supported (re-export with explicit pads)"),
])
def test_conv_attributes_ember_lacks(attrs, msg):
    w = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    m = graph_with([helper.make_node("Conv", ["x", "w"], ["y"], name="c", **attrs)], [w])
    with pytest.raises(OnnxImportError) as e:
        load_model(m.SerializeToString())
    assert str(e.value) == msg


def test_maxpool_ceil_mode_is_refused():
    m = graph_with([helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], ceil_mode=1)])
    with pytest.raises(OnnxImportError, match="node p: MaxPool with ceil_mode or dilations is not supported"):
        load_model(m.SerializeToString())


def test_computed_reshape_from_torch_lists_its_shape_ops():
    torch = pytest.importorskip("torch")
    import warnings

    class Net(torch.nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net(), (torch.zeros(2, 3, 4),), f, dynamo=False, opset_version=17, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    with pytest.raises(OnnxImportError, match=r"ember cannot build .*Shape \(1 node"):
        load_model(f.getvalue())


def test_load_model_rejects_a_non_file_object():
    with pytest.raises(TypeError, match="expected a path, bytes or a binary file object, got int"):
        load_model(42)


def test_load_model_reads_a_file_object():
    assert isinstance(load_model(io.BytesIO(good_bytes())), nn.Sequential)


def test_node_names_never_shadow_the_graph_modules_own_attributes():
    w = numpy_helper.from_array(np.ones((3,), np.float32), "w")
    m = graph_with([helper.make_node("Relu", ["x"], ["a"], name="/forward/Relu"),
                    helper.make_node("Add", ["a", "w"], ["b"], name="/steps/Add"),
                    helper.make_node("Relu", ["b"], ["y"], name="/training/Relu")], [w])
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((4,), np.float32), "w"))
    g = load_model(m.SerializeToString())
    assert [n for n, _ in g.named_children()] == ["node_forward", "node_steps", "node_training"]
    x = ember.randn(1, 3, 4, 4)
    np.testing.assert_allclose(g(x).numpy(), np.maximum(np.maximum(x.numpy(), 0) + 1, 0))


def test_a_model_returning_a_non_tensor_is_refused():
    class Bad(nn.Module):
        def forward(self, x):
            return {"y": x}
    with pytest.raises(OnnxExportError, match="must return a Tensor or a tuple of Tensors, got dict"):
        exported(Bad(), ember.randn(1, 2))


def test_the_trace_hooks_are_removed_even_after_an_error():
    import inspect
    from ember.autograd import Function
    before = inspect.getattr_static(Function, "apply"), nn.Module.__call__
    with pytest.raises(OnnxExportError):
        exported(nn.Sequential(nn.LocallyConnected2d(1, 1, (4, 4), 3)), ember.randn(1, 1, 4, 4))
    assert (inspect.getattr_static(Function, "apply"), nn.Module.__call__) == before
    exported(nn.Linear(2, 2), ember.randn(1, 2))
    assert (inspect.getattr_static(Function, "apply"), nn.Module.__call__) == before


def test_a_conv_whose_channels_do_not_fit_its_groups_names_the_node():
    w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")   # 3 outputs, group 2
    m = graph_with([helper.make_node("Conv", ["x", "w"], ["y"], name="c", group=2)], [w])
    with pytest.raises(OnnxImportError) as e:
        load_model(m.SerializeToString())
    assert str(e.value) == "node c: Conv does not fit an ember layer: out_channels must be divisible by groups"


def test_integer_or_advanced_indexing_is_refused_by_name():
    class Pick(nn.Module):
        def forward(self, x):
            return x[:, 0]
    with pytest.raises(OnnxExportError) as e:
        exported(Pick(), ember.randn(2, 3))
    assert str(e.value) == ("indexing with (slice(None, None, None), 0) (in Pick.forward) has no ONNX form in "
                            "ember's exporter: only slices (a:b:s) and ... are exported")


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_non_constant_pad_modes_are_refused(mode):
    p = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "p")
    m = graph_with([helper.make_node("Pad", ["x", "p"], ["y"], name="pd", mode=mode)], [p])
    with pytest.raises(OnnxImportError, match=f"node pd: Pad mode b'{mode}' is not supported"):
        load_model(m.SerializeToString())
