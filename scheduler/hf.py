"""Transformers models with random weights, exported to ONNX: the zoo's ``hf-*`` models (the ``torch`` extra).

The PIM paper's workloads are BERT, RoBERTa and GPT-2 from Hugging Face
Transformers over sequence lengths.  These are built here from a Transformers
configuration (no download: random weights from ``seed``) and exported with
``torch.onnx.export(..., dynamo=True)``: the legacy TorchScript exporter gives wrong
outputs for these models once an attention mask is an input.  GPT-2 is exported
with ``use_cache=False`` (no key/value cache outputs).  Inputs are ``input_ids`` and
``attention_mask`` of shape ``[batch, seq_len]``; the output is ``last_hidden_state``.

Exporting BERT-base takes tens of seconds, so each export is cached on disk by
configuration and library versions (``$HETSCHED_CACHE`` or ``~/.cache/hetsched``,
folder ``zoo``), written atomically; one that cannot be read is exported again.

torch and transformers are imported only when a model is built: without the extra
:func:`export` raises a one-line :class:`~scheduler.errors.ModelError` naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator

import onnx

from .errors import ModelError
from .fileio import mark_used
from .optimize import UNREADABLE, write_model

FAMILIES = ("bert", "roberta", "gpt2")
INSTALL = "pip install 'hetsched[torch]'"


def cache_dir() -> Path:
    """Where exported models are kept: ``$HETSCHED_CACHE/zoo``, else ``~/.cache/hetsched/zoo``."""
    root = os.environ.get("HETSCHED_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hetsched")
    return Path(root) / "zoo"


def _versions() -> dict[str, str]:
    """The installed versions of what an export depends on (read without importing torch: a cached model
    loads in a fraction of a second)."""
    try:
        return {name: version(name) for name in ("torch", "transformers", "onnxscript")}
    except PackageNotFoundError as exc:
        raise ModelError(f"the hf-* zoo models need the torch extra ({exc.name} is missing): {INSTALL}") from None


def _model(transformers: Any, family: str, *, layers: int, hidden: int, heads: int, seq_len: int,
           intermediate: int, vocab: int) -> Any:
    """The Transformers model of ``family`` with this configuration (random weights: seed torch first)."""
    if family == "gpt2":
        config = transformers.GPT2Config(n_layer=layers, n_embd=hidden, n_head=heads, n_inner=intermediate,
                                         vocab_size=vocab, n_positions=max(1024, seq_len), use_cache=False,
                                         bos_token_id=vocab - 1, eos_token_id=vocab - 1)
        return transformers.GPT2Model(config)
    kind = {"bert": (transformers.BertConfig, transformers.BertModel),
            "roberta": (transformers.RobertaConfig, transformers.RobertaModel)}[family]
    # RoBERTa's positions start after its padding index (1): it needs seq_len + 2 of them
    config = kind[0](num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                     intermediate_size=intermediate, vocab_size=vocab, max_position_embeddings=max(512, seq_len + 2))
    return kind[1](config, add_pooling_layer=False)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines, warnings and constant-folding notes kept off the user's terminal."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript",
                                                    "transformers")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export(family: str, *, layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int,
           batch: int, seed: int) -> onnx.ModelProto:
    """``family`` (bert | roberta | gpt2) at this size with random weights from ``seed``, as ONNX (cached).

    Raises ModelError without the torch extra, or when the exporter fails (the message names the model).
    """
    values = {"layers": layers, "hidden": hidden, "heads": heads, "seq_len": seq_len, "intermediate": intermediate,
              "vocab": vocab, "batch": batch, "seed": seed}
    key = json.dumps({"family": family, **values, **_versions()}, sort_keys=True)
    path = cache_dir() / f"{family}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.onnx"
    if path.is_file():
        mark_used(path)
        try:
            return onnx.load(str(path))
        except UNREADABLE:  # exported again
            pass
    import torch
    import transformers

    torch.manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(batch, seq_len, dtype=torch.int64)
    try:
        with _quiet(), torch.no_grad():
            model = _model(transformers, family, layers=layers, hidden=hidden, heads=heads, seq_len=seq_len,
                           intermediate=intermediate, vocab=vocab).eval()
            # by keyword: GPT-2's second positional input is its key/value cache, not the mask
            program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "attention_mask": mask}, dynamo=True,
                                        output_names=["last_hidden_state"])
    except Exception as exc:  # the exporter's own errors are long; the user needs which model failed
        raise ModelError(f"torch.onnx.export failed for {family} {values}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    proto = program.model_proto
    write_model(str(path), proto)
    return proto
