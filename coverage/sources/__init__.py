"""Readers for the real formats users have. Each returns canonical columns."""
