"""Benchmarks: one command (`python -m bench`), each figure beside a baseline from the same run.

The machine is shared and noisy, so no figure means much alone: every benchmark measures
its own baseline in the same run and reports the ratio. Nothing here asserts on speed.
"""
