"""STAC catalogue of the products eeflow publishes (:mod:`tasks.stac.catalogue`)."""
