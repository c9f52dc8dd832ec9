"""Data -> instructions: sources, FLAN-style template sets, tasks, tokenisation/collation."""
