"""Polar use case: Sentinel-1 EW GRD scenes to daily sea-ice charts."""
