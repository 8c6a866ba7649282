"""Search and download of real Copernicus data through maintained clients.

* :mod:`tasks.ingestion.search`: catalogue searches by area, time window, product type, cloud
  cover and orbit: OData (CDSE / CREODIAS, :mod:`tasks.ingestion.odata`) and STAC APIs through
  pystac-client (Earth Search, CDSE STAC, :mod:`tasks.ingestion.stac`); one
  :class:`~tasks.ingestion.products.CatalogueProduct` record per hit.
* :mod:`tasks.ingestion.download`: HTTP download with resume (Range), retries with exponential
  backoff on 429 / 5xx (Retry-After honoured), checksum verification, atomic placement.
* :mod:`tasks.ingestion.archive`: zip / tar extraction that refuses ``..``, absolute members and
  escaping links, and caps the unpacked size.
* :mod:`tasks.ingestion.fetch`: search results -> files on disk + a fetch manifest.
* :mod:`tasks.ingestion.credentials`: the bearer token from the environment or an Airflow
  connection; never written to configs, logs or manifests.
* :mod:`tasks.ingestion.availability`: "is there a scene for DAY over AREA?" for the DAG sensor.
"""
