"""Model loading: hub id, local directory (safetensors or GGUF), or an embedded name."""

from tuneval.models.loading import LoadedModel, default_device, load_adapter, load_config, load_model, load_result

__all__ = ["LoadedModel", "default_device", "load_adapter", "load_config", "load_model", "load_result"]
