"""YuNet's network run by OpenVINO, with the weights `yuface` compiles into its library.

`yuface` runs libfacedetection's YuNet through its own C++ loops, built without AVX-512: about
17 ms of one core for a 480x270 frame, the largest stage of the score job. The same network
in OpenVINO (the runtime that already serves the age model) takes about 4 ms. Nothing new is
downloaded or shipped: the 53 convolution layers are read from the library `yuface` installs
(its `param_pConvInfo` table, through ctypes), and this module rebuilds libfacedetection's
graph around them and its decoding after them, so that `detect` answers exactly what
`yuface.detect` answers (integer percent confidences, boxes and landmarks truncated to whole
pixels), up to float rounding. tests/model/serving/test_yunet_net.py compares the two on frames.

The graph (libfacedetection 2023, 3-clause BSD): the image padded with zeros to a multiple of
32 on both sides, a 3x3 stride-2 convolution, then units of a 1x1 convolution followed by a
3x3 depthwise one (ReLU after the depthwise), 2x2 max pools, a feature pyramid at strides 8,
16 and 32 (nearest-neighbour upsampling and addition), and four heads per stride: class and
objectness logits, a box (centre offset and log size in strides) and five landmarks.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

LAYERS = 53
STRIDES = (8, 16, 32)
PAD_TO = 32  # the input's sides are padded to a multiple of the coarsest stride
HEAD_CHANNELS = 16  # per anchor: class, objectness, box (4), five landmarks (10)
# libfacedetection's decoding as yuface 2023.5.1 builds it (the arguments its objectdetect_cnn
# passes to detection_output, read from the library's code; the test compares with yuface):
# candidates from this score, NMS at this IoU, at most these many faces.
MIN_SCORE = 0.2
NMS_IOU = 0.45
TOP_K = 1000
KEEP_TOP_K = 512
_LOGIT_LIMIT = 88.3762626647949  # its sigmoid clamps logits here (float32's exp range)

# Layer indices in the table: the backbone's units, the pyramid, then each head's three
# strides (pointwise and depthwise layer of each).
_HEAD, _CONV0, _BLOCKS = 0, 1, (3, 7, 11, 15, 19)
_LATERAL = {8: 23, 16: 25, 32: 27}
_HEADS = {"cls": 29, "bbox": 35, "obj": 41, "kps": 47}


class _ConvInfo(ctypes.Structure):
    # libfacedetection's ConvInfoStruct (facedetectcnn.h)
    _fields_ = [("channels", ctypes.c_int), ("num_filters", ctypes.c_int),
                ("is_depthwise", ctypes.c_bool), ("is_pointwise", ctypes.c_bool),
                ("with_relu", ctypes.c_bool), ("weights", ctypes.POINTER(ctypes.c_float)),
                ("biases", ctypes.POINTER(ctypes.c_float))]


@dataclass(frozen=True)
class ConvLayer:
    """One layer: a 1x1 convolution (weights [filters, channels]) or a 3x3 depthwise one
    (weights [9, channels], row-major over the kernel's rows and columns)."""

    channels: int
    filters: int
    depthwise: bool
    weights: np.ndarray
    biases: np.ndarray


def yuface_library() -> str:
    """The path of the libfacedetection library that the `yuface` package installs."""
    # Found without importing yuface: that would load its OpenMP runtime for nothing.
    spec = importlib.util.find_spec("yuface")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("yuface is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "libfacedetection.so")


@lru_cache(maxsize=1)
def read_layers(library: str | None = None) -> tuple[ConvLayer, ...]:
    """The 53 convolution layers of YuNet, copied out of libfacedetection's data.

    Raises:
        ValueError: the library's table is not the network this module builds (another
            libfacedetection version): the caller falls back to `yuface` itself.
    """
    lib = ctypes.CDLL(library or yuface_library())
    table = (_ConvInfo * LAYERS).in_dll(lib, "param_pConvInfo")
    layers = []
    for i, info in enumerate(table):
        depthwise = bool(info.is_depthwise)
        if depthwise == bool(info.is_pointwise) or info.channels <= 0 or info.num_filters <= 0:
            raise ValueError(f"libfacedetection layer {i}: neither 1x1 nor 3x3 depthwise")
        size = 9 * info.channels if depthwise else info.num_filters * info.channels
        weights = np.ctypeslib.as_array(info.weights, shape=(size,)).copy()
        biases = np.ctypeslib.as_array(info.biases, shape=(info.num_filters,)).copy()
        shape = (9, info.channels) if depthwise else (info.num_filters, info.channels)
        layers.append(ConvLayer(info.channels, info.num_filters, depthwise,
                                weights.reshape(shape), biases))
    _check_chain(layers)
    return tuple(layers)


def _check_chain(layers: list[ConvLayer]) -> None:
    """The layers fit the graph below: the head takes the 27 (padded to 32) values of a 3x3
    RGB patch, each depthwise layer follows a pointwise one of its width, the heads' widths."""
    head = layers[_HEAD]
    if head.depthwise or head.channels != 32:
        raise ValueError("libfacedetection layer 0: expected a 1x1 over a 3x3 patch (32)")
    for i in range(1, LAYERS, 2):
        pointwise, depthwise = layers[i], layers[i + 1]
        if pointwise.depthwise or not depthwise.depthwise \
                or depthwise.channels != pointwise.filters:
            raise ValueError(f"libfacedetection layers {i}, {i + 1}: not a 1x1 + 3x3 unit")
    widths = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
    for name, first in _HEADS.items():
        for level in range(3):
            if layers[first + 2 * level].filters != widths[name]:
                raise ValueError(f"libfacedetection {name} head {level}: "
                                 f"{layers[first + 2 * level].filters} outputs")


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The network's input size for an image: both sides up to a multiple of 32."""
    return -(-height // PAD_TO) * PAD_TO, -(-width // PAD_TO) * PAD_TO


def build_model(layers: tuple[ConvLayer, ...], height: int, width: int):  # -> ov.Model
    """The network for one padded input size: uint8 RGB [1, height, width, 3] in, one row of
    `HEAD_CHANNELS` raw outputs per anchor out, anchors in `anchors(height, width)`'s order."""
    import openvino as ov
    import openvino.opset13 as ops

    if height % PAD_TO or width % PAD_TO:
        raise ValueError(f"{width}x{height}: both sides must be multiples of {PAD_TO}")

    def const(array: np.ndarray):  # noqa: ANN202
        return ops.constant(np.ascontiguousarray(array, dtype=np.float32))

    def conv(x, index: int, relu: bool):  # noqa: ANN001, ANN202
        layer = layers[index]
        if layer.depthwise:  # [9, C] -> [C, 1, 1, 3, 3]
            kernel = layer.weights.T.reshape(layer.channels, 1, 1, 3, 3)
            x = ops.group_convolution(x, const(kernel), [1, 1], [1, 1], [1, 1], [1, 1])
        else:
            kernel = layer.weights.reshape(layer.filters, layer.channels, 1, 1)
            x = ops.convolution(x, const(kernel), [1, 1], [0, 0], [0, 0], [1, 1])
        x = ops.add(x, const(layer.biases.reshape(1, -1, 1, 1)))
        return ops.relu(x) if relu else x

    def unit(x, index: int, relu: bool = True):  # noqa: ANN001, ANN202
        return conv(conv(x, index, False), index + 1, relu)

    def block(x, index: int):  # noqa: ANN001, ANN202 - libfacedetection's 4-layer unit
        return unit(unit(x, index), index + 2)

    def pool(x):  # noqa: ANN001, ANN202
        return ops.max_pool(x, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2]).output(0)

    def upsample(x):  # noqa: ANN001, ANN202
        return ops.interpolate(x, ops.constant(np.array([2.0, 2.0], np.float32)), "nearest",
                               "scales", axes=ops.constant(np.array([2, 3], np.int64)),
                               nearest_mode="floor", coordinate_transformation_mode="asymmetric")

    image = ops.parameter([1, height, width, 3], ov.Type.u8, name="rgb")
    x = ops.transpose(ops.convert(image, ov.Type.f32), ops.constant(np.array([0, 3, 1, 2])))
    # The head is libfacedetection's 3x3 stride-2 convolution written as a 1x1 over each
    # output pixel's patch: patch value (ky * 3 + kx) * 3 + c, c in BGR order. As an ordinary
    # convolution over RGB: [filters, RGB, ky, kx].
    head = layers[_HEAD]
    kernel = head.weights[:, :27].reshape(head.filters, 3, 3, 3)[..., ::-1].transpose(0, 3, 1, 2)
    x = ops.convolution(x, const(kernel), [2, 2], [1, 1], [1, 1], [1, 1])
    x = ops.relu(ops.add(x, const(head.biases.reshape(1, -1, 1, 1))))
    x = pool(unit(x, _CONV0))
    x = block(block(x, _BLOCKS[0]), _BLOCKS[1])
    fb8 = block(pool(x), _BLOCKS[2])
    fb16 = block(pool(fb8), _BLOCKS[3])
    fb32 = block(pool(fb16), _BLOCKS[4])
    fb32 = unit(fb32, _LATERAL[32])
    fb16 = unit(ops.add(upsample(fb32), fb16), _LATERAL[16])
    fb8 = unit(ops.add(upsample(fb16), fb8), _LATERAL[8])
    rows = []
    for level, features in enumerate((fb8, fb16, fb32)):
        heads = [unit(features, _HEADS[name] + 2 * level, relu=False)
                 for name in ("cls", "obj", "bbox", "kps")]
        per_anchor = ops.transpose(ops.concat(heads, 1), ops.constant(np.array([0, 2, 3, 1])))
        rows.append(ops.reshape(per_anchor, ops.constant(np.array([-1, HEAD_CHANNELS])), False))
    return ov.Model([ops.concat(rows, 0)], [image], "yunet")


def anchors(height: int, width: int) -> np.ndarray:
    """(x, y, stride) of every anchor of a padded input, in the model's output order."""
    grids = []
    for stride in STRIDES:
        ys, xs = np.mgrid[0:height // stride, 0:width // stride]
        grids.append(np.stack([xs.ravel() * stride, ys.ravel() * stride,
                               np.full(xs.size, stride)], axis=1))
    return np.concatenate(grids).astype(np.float32)


def decode(raw: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """libfacedetection's decoding of the raw outputs: (confidences in whole percent, boxes
    (x, y, w, h) and landmarks (x, y five times) in whole pixels), as `yuface.detect` gives."""
    logits = np.clip(raw[:, :2], -_LOGIT_LIMIT, _LOGIT_LIMIT)
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    scores = np.sqrt(probabilities[:, 0] * probabilities[:, 1])
    candidates = np.flatnonzero(scores >= MIN_SCORE)
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")][:TOP_K]
    out, anchor = raw[candidates], priors[candidates]
    stride = anchor[:, 2:3]
    centre = out[:, 2:4] * stride + anchor[:, :2]
    half = np.exp(out[:, 4:6]) * stride / 2.0
    corners = np.concatenate([centre - half, centre + half], axis=1)
    marks = out[:, 6:16] * stride + np.tile(anchor[:, :2], 5)
    kept = _nms(corners)[:KEEP_TOP_K]
    corners, marks, scores = corners[kept], marks[kept], scores[candidates][kept]
    # FaceRect holds ints: C++ truncates the float corner and the float width and height.
    boxes = np.stack([corners[:, 0], corners[:, 1], corners[:, 2] - corners[:, 0],
                      corners[:, 3] - corners[:, 1]], axis=1)
    return (np.trunc(scores * 100).astype(np.int16), np.trunc(boxes).astype(np.int16),
            np.trunc(marks).astype(np.int16))


def _nms(corners: np.ndarray) -> list[int]:
    """Greedy NMS over score-sorted boxes: keep a box overlapping no kept one above NMS_IOU."""
    areas = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
    kept: list[int] = []
    for i in range(len(corners)):
        if kept:
            others = corners[kept]
            width = np.minimum(others[:, 2], corners[i, 2]) - np.maximum(others[:, 0],
                                                                         corners[i, 0])
            height = np.minimum(others[:, 3], corners[i, 3]) - np.maximum(others[:, 1],
                                                                          corners[i, 1])
            inter = np.where((width > 0) & (height > 0), width * height, 0.0)
            if np.any(inter / (areas[kept] + areas[i] - inter) > NMS_IOU):
                continue
        kept.append(i)
    return kept


class YuNetOpenVINO:
    """YuNet on OpenVINO's CPU plugin: `detect(rgb)` answers as `yuface.detect(bgr, conf=0)`."""

    def __init__(self, threads: int = 1, cpu_pinning: bool = False) -> None:
        import openvino as ov

        self._layers = read_layers()
        self._core = ov.Core()
        # One thread per worker process (one worker per core); no pinning: every worker of a
        # machine would bind to the same core (docs/serving.md).
        self._config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                        "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": cpu_pinning}
        self._compiled: dict[tuple[int, int], tuple] = {}  # padded size -> request, anchors

    def _for_size(self, height: int, width: int) -> tuple:
        key = padded_size(height, width)
        if key not in self._compiled:
            compiled = self._core.compile_model(build_model(self._layers, *key), "CPU",
                                                self._config)
            self._compiled[key] = (compiled.create_infer_request(), anchors(*key))
        return self._compiled[key]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(confidences in percent, boxes x, y, w, h, landmarks) of an RGB uint8 image."""
        height, width = rgb.shape[:2]
        request, priors = self._for_size(height, width)
        padded_height, padded_width = padded_size(height, width)
        padded = np.zeros((1, padded_height, padded_width, 3), np.uint8)
        padded[0, :height, :width] = rgb
        raw = request.infer({0: padded})[0]
        return decode(raw, priors)
