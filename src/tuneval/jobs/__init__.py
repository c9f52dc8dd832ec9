"""The orchestrators: runnable jobs over the library parts, as torchtune's recipes are.

demo.py: the main job (plan a time budget; base vs full vs LoRA; one table with intervals);
sweep.py: a grid of recipes, each trained and scored; forgetting.py: a benchmark suite before and
after an adapter, compared. Each only calls the parts below it (train, evaluate, tasks, report);
none of them is imported by those parts.
"""
