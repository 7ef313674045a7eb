"""Model families. Importing this package registers every family's presets."""
from kws_zoo.models import ds_cnn  # noqa: F401
from kws_zoo.models import matchboxnet  # noqa: F401
from kws_zoo.models import sinc_kws  # noqa: F401
from kws_zoo.models import bc_resnet, repcnn  # noqa: F401
from kws_zoo.models.registry import create_model, get_entry, list_models, model_config, register_model

__all__ = ["create_model", "get_entry", "list_models", "model_config", "register_model"]
