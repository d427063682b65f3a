"""Operators of the ModelsLab provider.

``modelslab_provider.operators.video`` generates videos (text, image, any endpoint). Modules are
imported on their own so that parsing a DAG pulls in only what it uses.
"""
