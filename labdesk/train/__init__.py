"""Mixing the phase datasets and tuning the student with LoRA, phase after phase."""
