"""Training: the HF Trainer, configured from a recipe, plus progress/memory callbacks."""
