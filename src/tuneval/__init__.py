"""tuneval: instruction fine-tune and evaluate language models."""

__version__ = "0.1.0"
