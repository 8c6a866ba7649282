"""Sentinel-1 EW GRD: SAFE reading and writing, calibration, geocoding, search, synthetic scenes."""
