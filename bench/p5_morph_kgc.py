"""P5 baseline: morph-kgc (an RML engine, the GeoTriples-style approach) on the same crop fields.

morph-kgc runs in its own virtual environment (``bench/out/morph-kgc-venv``, created and
installed on first use from the package index), so its dependencies never mix with eeflow's.
Input: N synthetic square fields (bench/p5_export.make_fields, UTM 33N). morph-kgc cannot
reproject or validate geometries, so its input is a CSV with the CRS84 WKT already computed by
eeflow's reader (that work is NOT counted for morph-kgc, which favours it). Its RML mapping writes
the per-feature core of eeflow's crop mapping: rdf:type, eeo:hasCropType (SKOS concept IRI),
eeo:confidence (xsd:double), geo:hasGeometry, the geometry's rdf:type and geo:asWKT. eeflow's fast
path runs on the GeoParquet in the same run (reprojection, checks, grid cells and observation links
included). One process each (morph-kgc ``number_of_processes=1``); CPU = user + sys of the
child, morph-kgc's start-up (a 10-row run) subtracted, eeflow's measured around the export alone.
Headline ratio: eeflow / morph-kgc triples per CPU-second. ``--quick`` never installs: without
the venv it measures eeflow alone and reports no ratio.

Run: .venv/bin/python bench/p5_morph_kgc.py [--features 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
VENV = ROOT / "bench" / "out" / "morph-kgc-venv"

from common import add_quick_flag, report  # noqa: E402

RML = """\
@prefix rr: <http://www.w3.org/ns/r2rml#> .
@prefix rml: <http://semweb.mmlab.be/ns/rml#> .
@prefix ql: <http://semweb.mmlab.be/ns/ql#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix geo: <http://www.opengis.net/ont/geosparql#> .
@prefix eeo: <https://w3id.org/eeflow/ontology#> .

<#Field> a rr:TriplesMap ;
  rml:logicalSource [ rml:source "{csv}" ; rml:referenceFormulation ql:CSV ] ;
  rr:subjectMap [ rr:template
      "https://w3id.org/eeflow/data/feature/crop_field/2017-09_2018-08/T00/{{id}}" ;
      rr:class eeo:CropFieldInstance ] ;
  rr:predicateObjectMap [ rr:predicate eeo:hasCropType ;
      rr:objectMap [ rr:template "https://w3id.org/eeflow/data/concept/crop_type/{{crop_class}}" ;
                     rr:termType rr:IRI ] ] ;
  rr:predicateObjectMap [ rr:predicate eeo:confidence ;
      rr:objectMap [ rml:reference "confidence" ; rr:datatype xsd:double ] ] ;
  rr:predicateObjectMap [ rr:predicate geo:hasGeometry ;
      rr:objectMap [ rr:parentTriplesMap <#Geometry> ] ] .

<#Geometry> a rr:TriplesMap ;
  rml:logicalSource [ rml:source "{csv}" ; rml:referenceFormulation ql:CSV ] ;
  rr:subjectMap [ rr:template
      "https://w3id.org/eeflow/data/geometry/crop_field/2017-09_2018-08/T00/{{id}}" ;
      rr:class geo:Geometry ] ;
  rr:predicateObjectMap [ rr:predicate geo:asWKT ;
      rr:objectMap [ rml:reference "wkt" ; rr:datatype geo:wktLiteral ] ] .
"""


def ensure_venv() -> Path:
    """Create the morph-kgc venv and install it (first run only); return its python."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} and installing morph-kgc ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "morph-kgc"], check=True)
    return python


def write_csv(parquet_files: list[Path], out: Path) -> int:
    """CSV id,crop_class,confidence,wkt with CRS84 WKT from eeflow's reader (not timed)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from tasks.linked_data.export import wkt_literals
    from tasks.linked_data.mapping import load_mapping
    from tasks.linked_data.readers import read_rows

    mapping = load_mapping("crop_field_instances")
    tables, first = [], 0
    for path in parquet_files:
        for batch in read_rows(path, mapping, 50_000):
            n = batch.table.num_rows
            wkt = wkt_literals(batch.geometry, 7, batch.native_geometry)
            tables.append(
                pa.table({"id": pa.array(range(first, first + n)),
                          "crop_class": batch.table.column("crop_class"),
                          "confidence": batch.table.column("confidence"),
                          "wkt": wkt})
            )
            first += n
    pacsv.write_csv(pa.concat_tables(tables), out)
    return first


def run_child(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall s, user + sys CPU s, stdout) of the child."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{cmd} failed: {err.read().decode()[-3000:]}")
        return wall, usage.ru_utime + usage.ru_stime, out.read().decode()


def count_lines(path: Path) -> int:
    """Lines of a file (= triples of an N-Triples file)."""
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))


def morph_kgc(python: Path, work: Path, csv_path: Path, name: str) -> tuple[float, float, int]:
    """Run morph-kgc on ``csv_path``; return (wall s, CPU s, triples written)."""
    mapping = work / f"{name}.rml.ttl"
    mapping.write_text(RML.format(csv=csv_path))
    out = work / f"{name}.nt"
    config = work / f"{name}.ini"
    config.write_text(
        f"[CONFIGURATION]\noutput_file: {out}\noutput_format: N-TRIPLES\n"
        f"number_of_processes: 1\nlogging_level: WARNING\n\n[FieldsCSV]\nmappings: {mapping}\n"
    )
    wall, cpu, _ = run_child([str(python), "-m", "morph_kgc", str(config)], work)
    triples = count_lines(out)
    out.unlink()
    return wall, cpu, triples


def main() -> None:
    from p5_export import make_fields

    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=100_000)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.features = 5_000
    installed = (VENV / "bin" / "python").exists()
    python = ensure_venv() if installed or not args.quick else None
    results = []
    with tempfile.TemporaryDirectory(prefix="p5mk-") as tmp:
        work = Path(tmp)
        parquet = make_fields(work / "fields", args.features)
        csv_path = work / "fields.csv"
        n = write_csv(parquet, csv_path)
        tiny = work / "tiny.csv"
        tiny.write_text("".join(csv_path.open().readlines()[:11]))
        if python is not None:
            _, startup_cpu, _ = morph_kgc(python, work, tiny, "tiny")
            wall, cpu, triples = morph_kgc(python, work, csv_path, "fields")
            results.append({"engine": "morph-kgc (RML, WKT precomputed)", "features": n,
                            "triples": triples, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                            "startup_cpu_s": round(startup_cpu, 2),
                            "triples_per_cpu_s": round(triples / max(cpu - startup_cpu, 1e-9)),
                            "loadavg_1m": round(os.getloadavg()[0], 2)})
            print(json.dumps(results[-1]), file=sys.stderr)
        _, _, stdout = run_child(
            [sys.executable, str(ROOT / "bench" / "p5_export.py"), "--child", "fast",
             str(work / "fields"), str(work / "fast.nt")], work)
        fast = json.loads(stdout.strip().splitlines()[-1])
        results.append({"engine": "eeflow fast (GeoParquet, reprojection + checks included)",
                        **{k: fast[k] for k in ("features", "triples", "wall_s", "cpu_s",
                                                "triples_per_cpu_s")},
                        "loadavg_1m": round(os.getloadavg()[0], 2)})
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"features": args.features, "results": results}, indent=1))
    fast = results[-1]["triples_per_cpu_s"]
    ratio = fast / results[0]["triples_per_cpu_s"] if python is not None else None
    report("p5_morph_kgc", ratio, ">= 1 M triples per CPU-second (user + system), fast writer",
           fast >= 1_000_000, {"features": args.features, "results": results,
                               "morph_kgc_installed": python is not None},
           baseline="morph-kgc (RML engine, GeoTriples-style), one process, WKT precomputed",
           quick=args.quick)


if __name__ == "__main__":
    main()
