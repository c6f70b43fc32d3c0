"""bbcov: broadband coverage analysis for municipalities.

The library is a set of pure stage functions over (Geo)DataFrames; file I/O,
logging configuration and orchestration live in :mod:`pipelines`.
"""

__version__ = "0.1.0"
