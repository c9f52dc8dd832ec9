"""Training: the HF Trainer configured from a recipe (trainer.py), its arguments, loss, callbacks,
checkpoints and run directory. The public entry is `tuneval.finetune` (api.py)."""
