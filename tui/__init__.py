"""Continuo's terminal UI: live ghost-text completion, next-word candidates, training and model management."""
