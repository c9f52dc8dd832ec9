"""Model loading: hub id, local directory (safetensors or GGUF), or an embedded name.

A trained result over a base (load_adapter, load_result) is the methods' business: methods/loading.py.
"""

from tuneval.model_args import ModelArgs
from tuneval.models.loading import LoadedModel, default_device, load_config, load_model

__all__ = ["LoadedModel", "ModelArgs", "default_device", "load_config", "load_model"]
