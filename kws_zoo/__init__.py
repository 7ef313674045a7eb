"""kws_zoo: keyword-spotting model zoo that ends on TensorFlow Lite Micro.

The public entry points are importable from the package root, loaded on first use (PEP 562), so `import kws_zoo`
stays light: `kws_zoo.create_model`, `kws_zoo.list_models`, `kws_zoo.load_pretrained`, `kws_zoo.list_pretrained`.
"""
__version__ = "0.1.0"

_PUBLIC = {"create_model": "hub", "load_pretrained": "hub", "list_pretrained": "hub", "list_models": "models"}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'kws_zoo' has no attribute {name!r}")
    if _PUBLIC[name] == "hub":
        from kws_zoo import hub as module
    else:
        from kws_zoo import models as module
    return getattr(module, name)


def __dir__():
    return sorted([*globals(), *_PUBLIC])
