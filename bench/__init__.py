"""Benchmarks: ``python -m bench`` (``make bench``) runs every module here that defines ``run`` and prints figures.

A benchmark module defines ``NAME``, ``add_arguments(parser)`` and ``run(args)``. Keep the modules'
top-level imports light: RQ work horses import ``bench.provisioning`` for every bare job of the floor.
"""
