"""Food-security use case: Sentinel-2 time series to crop-type maps per agronomic year."""
