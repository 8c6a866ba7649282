"""Edit the noise annotation of a generated SAFE: all-zero LUTs, as in some older IPF products."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lxml import etree


def zero_noise_luts(safe_dir: Path, polarisations: Sequence[str] = ("HH", "HV"),
                    legacy_format: bool = False) -> list[Path]:
    """Set every noise LUT value of ``polarisations`` to 0; return the edited files.

    ``legacy_format`` also rewrites the file in the IPF < 2.9 layout (``noiseVectorList`` /
    ``noiseVector`` / ``noiseLut``, no azimuth vectors), the layout of the real zero-LUT products.
    """
    edited = []
    for pol in polarisations:
        for path in sorted((safe_dir / "annotation" / "calibration").glob(
                f"noise-*-{pol.lower()}-*.xml")):
            tree = etree.parse(str(path))
            root = tree.getroot()
            for lut in root.iter("noiseRangeLut", "noiseLut"):
                lut.text = " ".join("0" for _ in (lut.text or "").split())
            if legacy_format:
                for old in root.findall("noiseRangeVectorList"):
                    old.tag = "noiseVectorList"
                    for vector in old.findall("noiseRangeVector"):
                        vector.tag = "noiseVector"
                        vector.find("noiseRangeLut").tag = "noiseLut"
                for azimuth in root.findall("noiseAzimuthVectorList"):
                    root.remove(azimuth)
            tree.write(str(path), xml_declaration=True, encoding="UTF-8")
            edited.append(path)
    if not edited:
        raise FileNotFoundError(f"{safe_dir}: no noise annotation for {list(polarisations)}")
    return edited
