"""Procedural multimodal indoor scenes: the quick suite's data and every test's."""
