"""Sensors of the ModelsLab provider."""
