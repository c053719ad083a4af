"""Op families: what a fused, contrib or layout-specific ONNX Runtime op is, in standard ONNX terms.

After graph optimisation a model holds ops such as ``FusedConv``, ``FusedMatMul``,
``SkipLayerNormalization`` or the NCHWc ``ReorderInput``.  The cost model (FLOPs,
bytes) and a device's ``supported_ops`` list reason about the standard op each one
computes: its family.  Ops not listed are their own family.

Example
-------
>>> op_family("FusedConv"), op_family("SkipLayerNormalization"), op_family("Relu")
('Conv', 'LayerNormalization', 'Relu')
"""

from __future__ import annotations

_FAMILIES: dict[str, tuple[str, ...]] = {
    "Conv": ("FusedConv", "NhwcConv", "QLinearConv", "ConvInteger", "NhwcFusedConv"),
    "MatMul": ("FusedMatMul", "MatMulNBits", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat",
               "DynamicQuantizeMatMul", "MatMulInteger16", "TransposeMatMul"),
    "Gemm": ("FusedGemm", "QGemm"),
    "LayerNormalization": ("SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
                           "SimplifiedLayerNormalization", "EmbedLayerNormalization", "RMSNormalization"),
    "Gelu": ("BiasGelu", "FastGelu", "QuickGelu"),
    "Softmax": ("BiasSoftmax",),
    "Add": ("BiasAdd", "BiasDropout"),
    "Attention": ("MultiHeadAttention", "GroupQueryAttention", "PackedAttention", "QAttention"),
    "Transpose": ("ReorderInput", "ReorderOutput"),  # NCHWc layout changes: data movement only
    "MaxPool": ("NhwcMaxPool", "QLinearMaxPool"),
    "AveragePool": ("QLinearAveragePool",),
    "GlobalAveragePool": ("QLinearGlobalAveragePool",),
}
_FAMILY_OF = {op: family for family, ops in _FAMILIES.items() for op in ops}


def op_family(op_type: str) -> str:
    """The standard ONNX op that ``op_type`` computes (itself when it is standard or unknown)."""
    return _FAMILY_OF.get(op_type, op_type)
