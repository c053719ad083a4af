"""A zoo of small, deterministic ONNX models to schedule, test and benchmark on.

Every model is built from scratch with :mod:`onnx.helper` (no torch, no
downloads), so tests and benchmarks get real transformer / CNN graph shapes
without shipping model files.  All models are float32, batch 1 (``mlp`` has a
``batch`` parameter), fully static in shape, use opset 20 and IR version 10
(which onnxruntime reads), and draw their weights from
``numpy.random.default_rng(seed)``, so the same parameters give the same bytes.

Models: ``bert`` (post-LN encoder), ``gpt2`` (pre-LN causal decoder with an
LM head), ``randwire`` (randomly wired CNN, Xie et al. 2019), ``inception``
(four-branch CNN blocks), ``resnet`` (ResNet-50), ``squeezenet`` (SqueezeNet
1.1), ``mobilenet`` (MobileNetV2), ``siamese`` (two LSTM towers) and ``mlp`` (a
plain chain); their defaults are small, for tests.  :data:`PRESETS` name them at
real sizes (``bert-base``, ``gpt2-small``, ``resnet50``, ``squeezenet1.1``,
``mobilenetv2``, ``siamese-lstm``, and one ImageNet-resolution stage of
``inception`` and ``randwire``).

Naming: every node has a unique, path-like name (``"l0/attn/q_matmul"``,
``"b1/branch3/conv5x5"``, ``"n4/conv"``) and its single output tensor carries
the same name, except for the graph outputs.  Initializers are named
``<node scope>_<role>`` (``"l0/attn/q_weight"``, ``"l0/attn/q_bias"``).

Examples
--------
>>> from scheduler import zoo
>>> [m.name for m in zoo.list_models() if m.extra is None]  # the hf-* ones need the torch extra
['bert', 'gpt2', 'randwire', 'inception', 'resnet', 'squeezenet', 'mobilenet', 'siamese', 'mlp']
>>> model = zoo.build("bert", **zoo.parse_params(["layers=1", "seq_len=8"]))
>>> model.graph.input[0].name, model.graph.output[0].name
('input_ids', 'last_hidden_state')
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any

import onnx
from onnx import helper

from scheduler import hf, zoo_layers, zoo_models
from scheduler.errors import ModelError
from scheduler.graph import without_large_values
from scheduler.schema import Finite, Integer, Text, parse
from scheduler.zoo_layers import ParamError
from scheduler.zoo_models import (build_bert, build_gpt2, build_hf, build_inception, build_mlp, build_mobilenet,
                                  build_randwire, build_resnet, build_siamese, build_squeezenet)

__all__ = ["PRESETS", "ZooError", "ZooModel", "build", "get_model", "list_models", "parse_params"]

OPSET = 20
"""Default-domain opset of every zoo model (20 is the first with ``Gelu``)."""

IR_VERSION = 10
"""IR version written into every model; onnxruntime rejects onnx's newer default."""

ParamValue = int | float | str


class ZooError(ModelError, ValueError):
    """A zoo request is invalid: unknown model or parameter, or a bad value.

    It is a :class:`ValueError` for library callers and a
    :class:`~scheduler.errors.HetschedError` so the CLI prints its one-line message.
    """


@dataclass(frozen=True)
class ZooModel:
    """One entry of the zoo: a name, what it is, its parameters and its builder.

    Parameters
    ----------
    name : str
        The name :func:`build` takes.
    description : str
        One line saying what the model is.
    defaults : Mapping[str, int | float | str]
        Every parameter the builder accepts with its default; the default's
        type is the type string values are coerced to.  Read-only.
    builder : Callable[..., onnx.GraphProto | onnx.ModelProto]
        Takes every parameter as a keyword argument (already coerced) and
        returns the graph, which :func:`build` wraps in a model, or a whole
        model (an exporter's: the ``hf-*`` models of :mod:`scheduler.hf`).
    extra : str or None
        The optional dependency (``pip install 'hetsched[extra]'``) the builder
        needs; None for the models built with onnx alone.
    """

    name: str
    description: str
    defaults: Mapping[str, ParamValue]
    builder: Callable[..., onnx.GraphProto | onnx.ModelProto] = field(repr=False, compare=False)
    extra: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.defaults, MappingProxyType):
            object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def build(self, **params: object) -> onnx.ModelProto:
        """Build this model; same as ``build(self.name, **params)``."""
        return build(self.name, **params)


_TRANSFORMER_DEFAULTS = {"layers": 2, "hidden": 64, "heads": 4, "seq_len": 16, "intermediate": 256}

_MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            "bert",
            "BERT encoder (post-LN): token + position embeddings, self-attention and Gelu FFN layers",
            {**_TRANSFORMER_DEFAULTS, "vocab": 512, "seed": 0},
            build_bert,
        ),
        ZooModel(
            "gpt2",
            "GPT-2 decoder (pre-LN): causal self-attention, Gelu MLP, final LayerNorm and LM head",
            {**_TRANSFORMER_DEFAULTS, "vocab": 256, "seed": 0},
            build_gpt2,
        ),
        ZooModel(
            "randwire",
            "randomly wired CNN (Xie et al. 2019): a ws/er/ba random DAG of Relu-Conv3x3-BN nodes",
            {
                "graph": "ws",
                "nodes": 8,
                "k": 4,
                "p": 0.75,
                "er_p": 0.2,
                "m": 2,
                "channels": 8,
                "image": 16,
                "classes": 10,
                "batchnorm": True,
                "seed": 0,
            },
            build_randwire,
        ),
        ZooModel(
            "inception",
            "Inception-style CNN: blocks of 1x1 / 1x1-3x3 / 1x1-5x5 / maxpool-1x1 branches concatenated",
            {"blocks": 2, "channels": 16, "image": 32, "classes": 10, "seed": 0},
            build_inception,
        ),
        ZooModel(
            "resnet",
            "ResNet-50 v1.5: bottleneck stages 3-4-6-3 with downsampling shortcuts (width 64 = the real one)",
            {"width": 16, "image": 64, "classes": 10, "seed": 0},
            build_resnet,
        ),
        ZooModel(
            "squeezenet",
            "SqueezeNet 1.1: fire modules with parallel 1x1 / 3x3 expand branches",
            {"image": 64, "classes": 10, "seed": 0},
            build_squeezenet,
        ),
        ZooModel(
            "mobilenet",
            "MobileNetV2: inverted residual blocks with depthwise 3x3 convolutions and Relu6",
            {"width_mult": 0.5, "image": 64, "classes": 10, "seed": 0},
            build_mobilenet,
        ),
        ZooModel(
            "siamese",
            "Siamese LSTM sentence encoder: two LSTM towers, last step, projection, cosine similarity",
            {"layers": 1, "hidden": 16, "embed": 16, "seq_len": 8, "vocab": 100, "proj": 16, "head": 1,
             "seed": 0},
            build_siamese,
        ),
        ZooModel(
            "mlp",
            "multilayer perceptron: a plain chain of MatMul + Add + Relu layers",
            {"layers": 4, "width": 64, "batch": 1, "seed": 0},
            build_mlp,
        ),
        *(ZooModel(f"hf-{family}", f"{label} from Hugging Face Transformers, random weights, exported by torch's "
                   "dynamo exporter (needs the torch extra)", {**_TRANSFORMER_DEFAULTS, "vocab": 512, "batch": 1,
                                                               "seed": 0},
                   functools.partial(build_hf, family), extra="torch")
          for family, label in (("bert", "BERT encoder"), ("roberta", "RoBERTa encoder"),
                                ("gpt2", "GPT-2 decoder (no key/value cache)"))),
    )
}


PRESETS: Mapping[str, tuple[str, Mapping[str, ParamValue]]] = MappingProxyType({
    "bert-base": ("bert", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                           "vocab": 30522}),
    "gpt2-small": ("gpt2", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                            "vocab": 50257}),
    "resnet50": ("resnet", {"width": 64, "image": 224, "classes": 1000}),
    "squeezenet1.1": ("squeezenet", {"image": 224, "classes": 1000}),
    "mobilenetv2": ("mobilenet", {"width_mult": 1.0, "image": 224, "classes": 1000}),
    "inception-imagenet": ("inception", {"blocks": 4, "channels": 64, "image": 56, "classes": 1000}),
    "randwire-imagenet": ("randwire", {"nodes": 32, "channels": 64, "image": 56, "classes": 1000}),
    "siamese-lstm": ("siamese", {"layers": 2, "hidden": 128, "embed": 128, "seq_len": 256, "vocab": 30000,
                                 "proj": 2048, "head": 2}),
    "hf-bert-base": ("hf-bert", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                                 "vocab": 30522}),
    "hf-roberta-base": ("hf-roberta", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128,
                                       "intermediate": 3072, "vocab": 50265}),
    "hf-gpt2-small": ("hf-gpt2", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                                  "vocab": 50257}),
})
"""Models at real sizes: name -> (zoo model, parameters).  ``build("bert-base", seq_len=64)`` overrides one.

The CNN stages ``inception-imagenet`` and ``randwire-imagenet`` are one
ImageNet-resolution stage (56x56, 64 channels), where their branches run.
"""


# --------------------------------------------------------------------------- public API


def list_models() -> tuple[ZooModel, ...]:
    """All zoo models, in a fixed order, so a CLI or a test can enumerate them.

    Returns
    -------
    tuple of ZooModel
    """
    return tuple(_MODELS.values())


def get_model(name: str) -> ZooModel:
    """The zoo entry called ``name``.

    Raises
    ------
    ValueError
        (a :class:`ZooError`) if there is no such model; the message lists the known ones.
    """
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ZooError(f"unknown zoo model {name!r}; known: {', '.join(_MODELS)}") from None


_PARAM_TYPES: dict[type, Any] = {bool: bool, int: Integer, float: Finite, str: Text}


def _coerce(model: str, key: str, value: object, default: ParamValue) -> ParamValue:
    """``value`` (often a CLI string) as the type of ``default``: ``"3"`` is 3, ``"yes"`` is True, ``true`` is
    not a number."""
    value = value.strip() if isinstance(value, str) else value
    return parse(_PARAM_TYPES[type(default)], value, f"zoo model {model!r}", ZooError, key=f"parameter {key}")


def resolve(name: str, **params: object) -> tuple[str, dict[str, ParamValue]]:
    """The zoo model that :func:`build` makes of ``name`` (a preset's base model) and every one of its parameters'
    values (a preset's and the defaults filled in, strings coerced); refused as :func:`build` refuses them.

    >>> resolve("mlp", layers="2")[1]["layers"]
    2
    """
    if name in PRESETS:
        base, preset = PRESETS[name]
        return resolve(base, **{**preset, **params})
    entry = get_model(name)
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        raise ZooError(
            f"unknown parameter {unknown[0]!r} for zoo model {name!r}; known: {', '.join(entry.defaults)}"
        )
    values = {key: _coerce(name, key, params.get(key, default), default) for key, default in entry.defaults.items()}
    if "seed" in values and values["seed"] < 0:
        raise ZooError(f"zoo model {name!r}: parameter 'seed' must be >= 0, got {values['seed']}")
    return name, values


BUILT_BY = ("onnx", "numpy", "torch", "transformers", "onnxscript")
"""The packages whose versions a zoo model may depend on (the exporters' for ``hf``)."""


def build_key(name: str, **params: object) -> str:
    """A digest of what :func:`build` makes of ``name`` and ``params``: the model and its parameters' values, the
    source of the modules that build it and the versions of :data:`BUILT_BY`; two builds of one key give the
    same model.

    >>> build_key("gpt2-small") == build_key("gpt2", **PRESETS["gpt2-small"][1]) != build_key("gpt2")
    True
    """
    base, values = resolve(name, **params)
    digest = hashlib.sha256(json.dumps([base, values], sort_keys=True).encode())
    for module in (sys.modules[__name__], zoo_layers, zoo_models, hf):
        with open(module.__file__, "rb") as fh:
            digest.update(fh.read())
    for package in BUILT_BY:
        try:
            digest.update(f"{package}={metadata.version(package)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package}=;".encode())
    return digest.hexdigest()[:32]


def build(name: str, **params: object) -> onnx.ModelProto:
    """Build zoo model ``name`` with ``params`` overriding its defaults.

    Values may be strings (as the CLI's ``--set key=value`` passes them); they
    are coerced to the type of the parameter's default.  The model is
    shape-inferred, so every intermediate tensor has a static shape in
    ``graph.value_info``; its ``doc_string`` and ``metadata_props``
    (``zoo.name``, ``zoo.params`` as JSON) record how it was built.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    **params
        Parameter overrides, e.g. ``layers=2`` or ``layers="2"``.

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    ValueError
        (a :class:`ZooError`) for an unknown model, an unknown parameter, a
        value that does not convert, or a value the model cannot use.
    """
    name, values = resolve(name, **params)
    entry = get_model(name)
    try:
        built = entry.builder(**values)
    except ParamError as exc:
        raise ZooError(f"zoo model {name!r}: {exc}") from None

    params_json = json.dumps(values, sort_keys=True)
    if isinstance(built, onnx.ModelProto):  # an exporter's model, with its own opsets and shapes
        built.doc_string = f"scheduler.zoo model {name!r} built with {params_json}"
        helper.set_model_props(built, {"zoo.name": name, "zoo.params": params_json})
        return built
    built.doc_string = f"scheduler.zoo model {name!r}: {entry.description}"
    model = helper.make_model(
        built,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="scheduler.zoo",
        doc_string=f"scheduler.zoo model {name!r} built with {params_json}",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"zoo.name": name, "zoo.params": params_json})
    # inferred on the model without its large values (only their dims count): serialising them took longer
    # than building the model (gpt2-small 10.3 s in all, 3.3 s so); the model is ours, given the result in place
    inferred = onnx.shape_inference.infer_shapes(without_large_values(model), check_type=True, strict_mode=True)
    for kind in ("value_info", "output"):
        del getattr(model.graph, kind)[:]
        getattr(model.graph, kind).extend(getattr(inferred.graph, kind))
    return model


def parse_params(items: Sequence[str], what: str = "zoo parameter") -> dict[str, str]:
    """Turn CLI ``key=value`` items into a dict of strings for :func:`build`.

    The value is everything after the first ``=``; a later item for the same
    key overrides an earlier one.

    Parameters
    ----------
    items : sequence of str
        E.g. ``["layers=2", "seq_len=16"]``.
    what : str
        What the items are, for the error message (``--option`` items are solver options).

    Returns
    -------
    dict of str to str
        E.g. ``{"layers": "2", "seq_len": "16"}``.

    Raises
    ------
    ValueError
        (a :class:`ZooError`) for an item without ``=`` or with an empty key.
    """
    if isinstance(items, str):
        items = [items]
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ZooError(f"bad {what} {item!r}: expected key=value")
        result[key] = value.strip()
    return result
