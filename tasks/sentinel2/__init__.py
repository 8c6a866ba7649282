"""Sentinel-2 L2A: time-series generator and reader."""
