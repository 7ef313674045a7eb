"""The one reader of a functional model's graph, from its public config (get_config / from_config), for the
rewrites that rebuild a model layer by layer (reparam, streaming).

A layer's config entry lists `inbound_nodes`, one per call of the layer; each holds references
[layer_name, node_index, tensor_index, kwargs] to the tensors the call consumed, nested in lists for layers
called on several tensors. Entries come in topological order: every layer after the layers it reads.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from kws_zoo.core.compat import keras


class Call(NamedTuple):
    """One layer of the graph: the layer, its config entry as written (inbound nodes included), the tensor
    references of its inbound nodes (flattened, in order) and the keyword arguments it is called with."""
    layer: keras.layers.Layer
    entry: dict
    refs: list[list]
    kwargs: dict


def is_functional(model) -> bool:
    """True for a functional keras.Model (not Sequential, not subclassed): the only kind with a graph config."""
    return (isinstance(model, keras.Model) and not isinstance(model, keras.Sequential)
            and "input_layers" in model.get_config())


def _is_ref(obj: Any) -> bool:
    return isinstance(obj, list) and len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int)


def inbound_refs(nodes: Any) -> list[list]:
    """Every [layer_name, node_index, tensor_index, kwargs] reference in an inbound-node structure, in order."""
    if _is_ref(nodes):
        return [nodes]
    if isinstance(nodes, list):
        return [ref for item in nodes for ref in inbound_refs(item)]
    return []


def rename_refs(nodes: Any, rename: dict[str, str]) -> Any:
    """A copy of an inbound-node structure whose references to layer `old` point at `rename[old]` instead."""
    if _is_ref(nodes):
        return [rename.get(nodes[0], nodes[0]), *nodes[1:]]
    if isinstance(nodes, list):
        return [rename_refs(item, rename) for item in nodes]
    return nodes


def call_kwargs(refs: list[list]) -> dict:
    """The keyword arguments a layer is called with (e.g. training=False), merged over its references."""
    kwargs = {}
    for ref in refs:
        if len(ref) > 3 and ref[3]:
            kwargs.update(ref[3])
    return kwargs


def walk(model: keras.Model, config: dict | None = None) -> Iterator[Call]:
    """Every layer of a functional model in topological order (config: model.get_config(), if already at hand)."""
    config = model.get_config() if config is None else config
    for entry in config["layers"]:
        refs = inbound_refs(entry["inbound_nodes"])
        yield Call(model.get_layer(entry["name"]), entry, refs, call_kwargs(refs))
