"""Training data sets and Lightning DataModules (one module per data set)."""
