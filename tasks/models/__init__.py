"""Neural networks: plain ``nn.Module`` s, one module per model family.

:mod:`tasks.models.ice_zoo` and :mod:`tasks.models.crop_zoo` build one by name; the
LightningModules that train them are in :mod:`tasks.trainers`.
"""
