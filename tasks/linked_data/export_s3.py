"""RDF export of a product run on an ``s3://`` data root.

:func:`tasks.linked_data.export.export_product` reads and writes local files. On S3 the input
folder its ``inputs.<product>`` glob names (e.g. ``polar/predict/{run_key}``) is downloaded from
its published version into a local mirror of the data root, the export runs there, and its output
folder is uploaded and published as ``{root}/linked_data/rdf/{run_key}/{product}`` (pointer last,
:func:`tasks.storage.atomic_dir`). The mirror keeps the layout, so the RDF (whose paths are
relative to the data root) is the same bytes as on a local root; in the manifest, the result and
``rejected.csv`` the mirror's paths become ``s3://`` URLs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tasks.config.linked_data import LinkedDataConfig
from tasks.storage import atomic_dir, download_stage_dir, stage_location

log = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


def input_folder(cfg: LinkedDataConfig, product: str, run_key: str) -> str | None:
    """Return the data-root-relative folder of ``product``'s inputs (None: it has none).

    Raises:
        ValueError: the glob is absolute or its folder part has wildcards (it cannot name one
            published S3 output).

    """
    if product == "vocabulary":
        return None
    pattern = cfg.inputs.for_product(product).format(run_key=run_key)
    folder, _, _name = pattern.rpartition("/")
    if not folder or pattern.startswith("/") or _GLOB_CHARS & set(folder):
        raise ValueError(
            f"linked_data inputs.{product} {pattern!r} must be a glob of file names inside one "
            "stage output folder of the data root (e.g. polar/predict/{run_key}/*_chart.geojson) "
            f"to export it from an s3:// data root ({cfg.data_root!r})"
        )
    return folder


def export_product_s3(cfg: LinkedDataConfig, product: str, run_key: str) -> dict[str, Any]:
    """:func:`tasks.linked_data.export.export_product` for an ``s3://`` data root.

    Returns its result with the output paths as ``s3://`` URLs.

    Raises:
        FileNotFoundError: the input folder has no published output.

    """
    from tasks.linked_data.export import export_product
    from tasks.naming import safe_name

    product = safe_name("product", product)
    run_key = safe_name("run_key", run_key)
    root = str(cfg.storage_root())
    folder = input_folder(cfg, product, run_key)
    with tempfile.TemporaryDirectory(prefix="eeflow-rdf-") as scratch:
        mirror = Path(scratch) / "root"
        mirror.mkdir()
        if folder is not None:
            source = f"{root}/{folder}"
            try:
                download_stage_dir(source, mirror / folder)
            except FileNotFoundError as err:
                raise FileNotFoundError(
                    f"no input for product {product!r} run {run_key!r}: {source} has no "
                    f"published output ({err}); run the stage that produces it"
                ) from err
        local_cfg = cfg.model_copy(update={"data_root": str(mirror)})
        result = export_product(local_cfg, product, run_key)
        local_out = Path(result["rdf"]).parent
        final = f"{stage_location(root, 'linked_data', 'rdf', run_key)}/{product}"
        local_prefix = str(mirror.resolve())
        with atomic_dir(final) as tmp:
            for path in sorted(local_out.iterdir()):
                if path.name in ("manifest.json", "rejected.csv"):
                    (tmp / path.name).write_text(path.read_text().replace(local_prefix, root))
                else:
                    shutil.copy2(path, tmp / path.name)
    log.info("rdf export %s %s published to %s", product, run_key, final)
    return {key: value.replace(local_prefix, root) if isinstance(value, str) else value
            for key, value in result.items()}
