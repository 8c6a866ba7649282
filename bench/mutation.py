"""Mutation testing of eeflow's core science modules with mutmut 3, one module at a time.

For each module the script copies the working tree (tracked + untracked, not ignored files) into a
temporary folder, appends a ``[tool.mutmut]`` section naming that module and its tests, runs
``mutmut run`` there (so the repository never gets a ``mutants/`` folder or a per-module config),
reads mutmut's per-mutant exit codes and writes:

* ``bench/results/mutation.json``: per module the mutant counts and every surviving mutant's name,
  status and diff (merged into the file, so runs of single modules accumulate);
* ``bench/results/mutation_survivors.md``: the survivors as a markdown list, equivalent ones marked
  with the reason from ``EQUIVALENT``.

Usage::

    python bench/mutation.py                       # every module of MODULES (hours on 2 cores)
    python bench/mutation.py --module tasks/storage.py --module tasks/sentinel1/lut.py
    python bench/mutation.py --list
    python bench/mutation.py --committed --module ...   # the last commit, not the working tree

``make mutation`` runs it; it is not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"

# The core science modules of issue 19 and the tests that exercise them. mutmut's stats run maps
# each mutant to the tests that call the mutated function, so a wider test list costs only the
# one-off stats run.
MODULES: dict[str, list[str]] = {
    "tasks/storage.py": [
        "tests/tasks/test_storage.py", "tests/tasks/test_storage_reference.py",
        "tests/tasks/test_storage_s3.py", "tests/faults/test_atomic_publish.py",
    ],
    "tasks/sentinel1/lut.py": [
        "tests/tasks/sentinel1/test_lut.py", "tests/tasks/sentinel1/test_lut_reference.py"
    ],
    # the folder's generated-scene fixtures cost seconds per mutant; the real-product tests of
    # test_safe.py plus the XML-against-ElementTree tests cover the reader
    "tasks/sentinel1/safe.py": [
        "tests/tasks/sentinel1/test_safe_mutation.py",
        "tests/tasks/sentinel1/test_safe.py::test_real_iw_grd_manifest_and_annotation",
        "tests/tasks/sentinel1/test_safe.py::test_real_calibration_and_noise_luts",
        "tests/tasks/sentinel1/test_safe.py::test_real_iw_product_is_rejected_for_ew_pipeline",
        "tests/tasks/sentinel1/test_safe.py::test_real_ew_slc_annotation",
    ],
    # test_geocode.py's curved-swath fixture generates a 4000-line scene for every mutant it
    # reaches; the mutation tests check each function against independent computations
    "tasks/sentinel1/geocode.py": ["tests/tasks/sentinel1/test_geocode_mutation.py"],
    # the folder's generator tests build whole scenes per mutant; the mutation tests recompute
    # the track, headings and ground ranges independently
    "tasks/sentinel1/swath_geometry.py": [
        "tests/tasks/sentinel1/test_swath_geometry_mutation.py"
    ],
    # the polar folder runs generate -> harmonise -> patches -> train per mutant; the hand-loop
    # tests first (fast; pytest stops at the first failure), then the tiny end-to-end scene
    "tasks/polar/harmonise.py": [
        "tests/tasks/polar/test_harmonise_mutation.py",
        "tests/tasks/polar/test_harmonise_mutation_scene.py",
        "tests/tasks/polar/test_harmonise_mutation_run.py",
        # the S3 paths (moto): downloaded ingest and tasks on an in-process worker
        "tests/tasks/polar/test_harmonise_mutation_s3.py",
    ],
    # the polar folder builds two generated scenes and trains per mutant; the hand-made scenes
    # (every patch checked), the count kernels and the Dask path (LocalCluster) instead
    "tasks/polar/patches.py": [
        "tests/tasks/polar/test_patches_mutation.py", "tests/tasks/polar/test_patches_counts.py",
        "tests/tasks/polar/test_patches_cluster.py",
    ],
    # the polar folder trains a model and charts scenes per mutant (hours); the hand-made
    # a hand-made model folder and scene: class map, chart, polygons, run_predict (local, S3)
    "tasks/polar/predict.py": [
        "tests/tasks/polar/test_predict_mutation.py",
        "tests/tasks/polar/test_predict_mutation_dense.py",
        "tests/tasks/polar/test_predict_mutation_products.py",
        "tests/tasks/polar/test_predict_mutation_s3.py",
        "tests/tasks/polar/test_predict_mutation_geo.py",
    ],
    # the polar folder runs the whole generate -> predict chain per mutant; the reference tests
    # check every function of the module value by value
    "tasks/polar/quicklook.py": ["tests/tasks/polar/test_quicklook_reference.py"],
    # test_harmonise.py generates and harmonises a whole tile-year per mutant; the hand-worked
    # tests plus the reading-path references (a 64 px tile, a two-tile 16 px archive) instead
    "tasks/food_security/harmonise.py": [
        "tests/tasks/food_security/test_harmonise_mutation.py",
        "tests/tasks/food_security/test_harmonise_reading.py",
        # run_harmonise_on_s3 and the S3 listing on a moto server
        "tests/tasks/food_security/test_harmonise_mutation_s3.py",
    ],
    # test_labels.py runs the whole generate -> harmonise -> labels pipeline (~10 s) for each
    # mutant it reaches; with it the 800 mutants take hours on 2 cores. The hand-made tile
    # tests and a hand-made harmonise output + parcel map for run_labels reach every function.
    "tasks/food_security/labels.py": [
        "tests/tasks/food_security/test_labels_reference.py",
        "tests/tasks/food_security/test_labels_mutation.py",
    ],
    # hand-made stage outputs; test_samples.py runs the generate -> labels pipeline per mutant
    "tasks/food_security/samples.py": ["tests/tasks/food_security/test_samples_mutation.py"],
    # one tiny training per test: the card / trainer-settings and per-phase loss tests, plus
    # the two cheap error tests of test_train.py (its other tests train 2-3 models each)
    "tasks/food_security/train.py": [
        "tests/tasks/food_security/test_train_mutation_card.py",
        "tests/tasks/food_security/test_train_mutation.py",
        "tests/tasks/food_security/test_train.py::test_train_rejects_unknown_model",
        "tests/tasks/food_security/test_train.py::test_train_without_samples_names_the_missing_store",
    ],
    # hand-worked tests only: test_lucas_evaluate.py generates a 2,500-parcel farmland per mutant
    "tasks/lucas/evaluate.py": ["tests/tasks/lucas/test_evaluate_mutation.py"],
    # the hand-worked tests only: test_lucas_matching / test_lucas_raster_sampling build a
    # 2,500-parcel farmland or random rasters per mutant (hours for the ~1,500 mutants)
    "tasks/lucas/matching.py": ["tests/tasks/lucas/test_matching_mutation.py"],
    "tasks/lucas/points.py": [
        "tests/tasks/lucas/test_lucas_points.py", "tests/tasks/lucas/test_points_mutation.py"
    ],
    # the folder's export tests write whole products per mutant; the hand-made batches check
    # every triple, rejection and statistic of the exporter
    "tasks/linked_data/export/exporter.py": ["tests/tasks/linked_data/test_exporter_mutation.py"],
    # the export tests write whole products per mutant (~30 s); the hand-made columns check
    # every conversion value by value
    "tasks/linked_data/export/values.py": ["tests/tasks/linked_data/test_values_mutation.py"],
    "tasks/linked_data/geometry.py": ["tests/tasks/linked_data/test_geometry.py"],
    # stop 15: local zarr chunks read / written without zarr's pipeline (patch extraction)
    "tasks/zarr_direct.py": ["tests/tasks/test_zarr_direct.py"],
}

# Surviving mutants that cannot change behaviour, with the reason. Keys are mutmut's mutant names
# (stable while the function's source is unchanged); they count as "equivalent", not "survived".
_EQUIVALENT_GROUPS: list[tuple[str, list[str]]] = [
    # tasks/lucas/matching.py and evaluate.py (H8)
    (
        "search schedule (first distance, widening factor): distances are exact at every level, "
        "so they only change how many levels run; the first level still covers the radius",
        [f"tasks.lucas.matching.x_raster_neighbourhood_per_point__mutmut_{i}"
         for i in (19, 20, 198)]
        + [f"tasks.lucas.matching.x_vector_neighbourhood__mutmut_{i}" for i in (32,)],
    ),
    (
        "a larger pixel window or tile halo than needed: pixels beyond the search distance fail "
        "the exact distance test, and ties keep row-major order",
        [f"tasks.lucas.matching.x_raster_neighbourhood_per_point__mutmut_{i}"
         for i in (34, 35, 40, 41, 60, 61, 64, 65)]
        + [f"tasks.lucas.matching.x__sample_level__mutmut_{i}" for i in (9, 10, 15, 16, 118, 121)],
    ),
    (
        "fill -2 instead of -1 beyond the raster: both are no class",
        [f"tasks.lucas.matching.x_raster_neighbourhood_per_point__mutmut_{i}" for i in (71,)],
    ),
    (
        "within recomputed at a later level: only points with nothing within the previous, larger "
        "search are searched again, so nothing lies within their radius; the within fields of a "
        "chunk are read only when a radius is given",
        [f"tasks.lucas.matching.x_raster_neighbourhood_per_point__mutmut_{i}" for i in (188, 189)]
        + [f"tasks.lucas.matching.x_vector_neighbourhood__mutmut_{i}" for i in (62, 63, 64)]
        + [f"tasks.lucas.matching.x__match_chunk__mutmut_{i}" for i in (61,)],
    ),
    (
        "zip's strict flag on tile starts and ends of equal length; a batch of at least 2 or a "
        "step of 1 only changes the batch size",
        [f"tasks.lucas.matching.x__sample_level__mutmut_{i}" for i in (85, 90, 93, 94, 128)],
    ),
    (
        "prefilter supersets (summed-area count too large or >= 0, more cell rows, wider chunk "
        "extents, 'or' for 'and'): more candidates, the exact float64 test decides",
        [f"tasks.lucas.matching.xǁPointGridǁpairs__mutmut_{i}" for i in (108, 112, 121, 149, 150)]
        + [f"tasks.lucas.matching.x__chunk_may_hit__mutmut_{i}" for i in (5, 6, 17, 18, 19)]
        + [f"tasks.lucas.matching.x__match_level__mutmut_{i}" for i in (17, 18)],
    ),
    (
        "astype / asarray without the dtype on values already int64 / float64 (or made float64 "
        "later); searchsorted's default side is 'left'; the thread count of the chunk pool; an "
        "empty point set or map returns the empty result either way",
        [f"tasks.lucas.matching.xǁPointGridǁpairs__mutmut_{i}" for i in (161, 178)]
        + [f"tasks.lucas.matching.x_candidate_pairs__mutmut_{i}" for i in (31, 33)]
        + [f"tasks.lucas.matching.x_vector_neighbourhood__mutmut_{i}" for i in (3, 5, 10, 12, 18)]
        + [f"tasks.lucas.matching.x__match_level__mutmut_{i}" for i in (30,)],
    ),
    (
        "None or empty point geometries project to NaN either way (such points are never used)",
        [f"tasks.lucas.evaluate.x__project_points__mutmut_{i}" for i in (13,)],
    ),
    (
        "class names as a numpy unicode array instead of object, the class indicator as float: the "
        "same values, comparisons and products; with no used point every variant of the empty "
        "'correct' array is never assigned (the table fill is guarded by used.size)",
        [f"tasks.lucas.evaluate.x__apply_rules__mutmut_{i}"
         for i in (4, 6, 9, 11, 18, 21, 29, 31, 38, 41, 42, 43, 44)],
    ),
    (
        "to_numpy without dtype=object on string / boolean columns: the same values",
        [f"tasks.lucas.evaluate.x_classify_points__mutmut_{i}" for i in (3, 109)]
        + [f"tasks.lucas.evaluate.x_points_with_same_class_within__mutmut_{i}" for i in (17,)],
    ),
    (
        "PointGrid: points taken as given (callers pass float64); truncation after fmax(c, 0) "
        "equals floor; float32 boxes prefiltered in float64 (more precise, still a superset)",
        ["tasks.lucas.matching.xǁPointGridǁbuild__mutmut_3",
         "tasks.lucas.matching.xǁPointGridǁ_cells__mutmut_11",
         "tasks.lucas.matching.xǁPointGridǁ_cells__mutmut_13",
         "tasks.lucas.matching.xǁPointGridǁpairs__mutmut_7"],
    ),
    # tasks/linked_data/export/values.py (H8)
    (
        "the typed-Arrow fast path is only faster: a numeric column sent to the text path (a typo "
        "in its datatype list, 'and' for 'or') gets the same lexical forms and reasons",
        [f"tasks.linked_data.export.values.x_convert_values__mutmut_{i}"
         for i in (142, 143, 145, 146, 148, 149, 151, 152, 153)],
    ),
    (
        "prop.column is always set for a column property (name fallback never used); "
        "zero_copy_only=None is falsy like False; null codes are rejected as empty before the "
        "code-list test, whatever fill_null gives them",
        [f"tasks.linked_data.export.values.x_convert_values__mutmut_{i}"
         for i in (3, 23, 27, 29, 37)]
        + [f"tasks.linked_data.export.values.x__numeric_literals__mutmut_{i}" for i in (3, 6, 12)],
    ),
    (
        "dtype left to inference: lists of str / None are object Series, pa.array of str is "
        "string, of float64 is float64, astype(None) is float64, a list of bools is bool",
        [f"tasks.linked_data.export.values.x_convert_values__mutmut_{i}"
         for i in (69, 71, 117, 119, 183, 185, 191, 200, 202, 227, 230, 248, 251)]
        + [f"tasks.linked_data.export.values.x__numeric_literals__mutmut_{i}"
           for i in (5, 54, 57, 87, 90)],
    ),
    (
        "np.mod without out / where: the values outside 'finite' are masked by '& finite'",
        [f"tasks.linked_data.export.values.x__numeric_literals__mutmut_{i}" for i in (37, 40, 41)],
    ),
    (
        "PointGrid shape only (extent, cell size, column / row counts, the cell cap loop, "
        "the clip of a point's cell, count dtypes, argsort kind): build and pairs share the grid, "
        "so any consistent grid gives the same pairs, which the callers sort",
        [f"tasks.lucas.matching.xǁPointGridǁbuild__mutmut_{i}"
         for i in (5, 10, 12, 23, 25, 33, 40, 47, 51, 56, 59, 62, 64, 66, 67, 70, 71, 83, 96,
                   113, 115, 130, 133, 142, 144, 146)],
    ),
    (
        "raster tile groups split more finely (a start at every point past the first tile row) "
        "only reads more windows; _sample_level always has points, so 'unresolved' is never "
        "empty; numpy reads reshape(n, -2) like reshape(n, -1)",
        [f"tasks.lucas.matching.x__sample_level__mutmut_{i}" for i in (72, 162, 164)]
        + ["tasks.lucas.matching.x__test_points__mutmut_112"],
    ),
    (
        "raster: coordinates taken as given (float math follows); within recomputed at a later "
        "level finds nothing new (see above); a zero-size window reads nothing either way; the "
        "tile size (at least two blocks) only changes how the raster is read; reshape(n, -2) "
        "reads like reshape(n, -1)",
        [f"tasks.lucas.matching.x_raster_neighbourhood__mutmut_{i}"
         for i in (3, 5, 10, 12, 64, 65, 66)]
        + [f"tasks.lucas.matching.x__read_class_window__mutmut_{i}" for i in (35, 36)]
        + [f"tasks.lucas.matching.x__sampling_tile_shape__mutmut_{i}" for i in (9, 19)]
        + ["tasks.lucas.matching.x__test_points__mutmut_129"],
    ),
    (
        "outside_country: a missing or unknown NUTS0 code (NA, '', 'XXXX') all give a NaN box, "
        "so the point is not flagged; the box columns are float64 already; pyproj reads "
        "'epsg:4326'; a None geometry has NaN coordinates either way; an empty table returns "
        "before the coordinates are read. A points table always has more columns than "
        "GPS_LAT/GPS_LONG ('<' for '<=')",
        [f"tasks.lucas.evaluate.x_outside_country__mutmut_{i}"
         for i in (12, 19, 21, 28, 31, 34, 41, 42, 45, 52, 53)]
        + ["tasks.lucas.evaluate.x__build_report__mutmut_63"],
    ),
    (
        "map_side_classes: reading band 1 as (1, h, w), or the whole raster for every block, "
        "gives the same set of values; the 'present' flags as float index the same classes; "
        "pyproj reads 'epsg:4326'",
        [f"tasks.lucas.evaluate.x_map_side_classes__mutmut_{i}" for i in (3, 5, 15, 16, 17, 18)]
        + ["tasks.lucas.evaluate.x__evaluation_crs__mutmut_11"],
    ),
    # tasks/food_security/samples.py (H8)
    (
        "samples: to_zarr's default mode into the fresh temporary folder of atomic_dir; "
        "open_group without mode='r' opens an existing store the same way; a row-block step of "
        "1 re-reads rows and writes the same values again; reshape(-2, n) reads like "
        "reshape(-1, n); the dtype of the empty fallback of no tiles (the result is {} then)",
        ["tasks.food_security.samples.x__write_split__mutmut_169",
         "tasks.food_security.samples.x_gather_tile_samples__mutmut_5",
         "tasks.food_security.samples.x_gather_tile_samples__mutmut_73",
         "tasks.food_security.samples.x_run_samples__mutmut_125",
         "tasks.food_security.samples.x_select_pixels__mutmut_24"],
    ),
    # tasks/food_security/train.py (H8)
    (
        "train: save_top_k=1 is ModelCheckpoint's default; load_state_dict copies a checkpoint "
        "loaded without map_location into the module's own tensors (same values); the final "
        "validation's model summary, verbose table and seed_everything's verbose flag only "
        "print; validation in eval mode on one CPU device gives the same values without "
        "deterministic=True",
        ["tasks.food_security.train.x__phase_trainer__mutmut_15",
         "tasks.food_security.train.x__run_phases__mutmut_77",
         "tasks.food_security.train.x__validate__mutmut_14",
         "tasks.food_security.train.x__validate__mutmut_15",
         "tasks.food_security.train.x__validate__mutmut_27",
         "tasks.food_security.train.x_train_crop_model__mutmut_78"],
    ),
    # tasks/food_security/harmonise.py (H8)
    (
        "crop harmonise: None (NaN) instead of inf for invalid observations sorts last as well; "
        "a (2, ...) index broadcast of which only row 0 is read; reshape(-2) reads like "
        "reshape(-1); prev clipped only above: a missing previous month (-1) indexes an entry "
        "that is never used (weights 0, 'prev_ok' false); overwrite=None (falsy) fills a copy "
        "with the same values; the region jobs' reader-thread count; zip's strict on the jobs "
        "and their results (one result per job)",
        ["tasks.food_security.harmonise.x_monthly_median_composite__mutmut_21",
         "tasks.food_security.harmonise.x_monthly_median_composite__mutmut_66",
         "tasks.food_security.harmonise.x_fill_gaps__mutmut_128",
         "tasks.food_security.harmonise.x_fill_gaps__mutmut_149",
         "tasks.food_security.harmonise.x__fill_and_write__mutmut_71",
         "tasks.food_security.harmonise.x__composite_year__mutmut_45",
         "tasks.food_security.harmonise.x__composite_year__mutmut_63"],
    ),
    # tasks/polar/patches.py (H8)
    (
        "polar patches: how the work is split and throttled, not what is written: the in-flight "
        "window of _cut_on_cluster; np.arange's default int64 is intp on 64-bit Linux. (The "
        "entries of _cut_chosen, _ordered_results and _PatchStore.__init__ were dropped when "
        "those functions changed in stop 15: their mutant numbers moved; re-analyse them.)",
        ["tasks.polar.patches.x__cut_on_cluster__mutmut_105",
         "tasks.polar.patches.x__cut_on_cluster__mutmut_108",
         "tasks.polar.patches.x__patch_counts_aligned__mutmut_82"],
    ),
    (
        "polar patches (stop 15 sample): collecting results more eagerly (`or` in the throttle "
        "loop) only throttles; pure=True / None on join tasks whose arguments always differ; "
        "tqdm's description; zip's strict on sequences of one length by construction; "
        "max(initial=1) of labels that are never empty; the message of a bookkeeping error no "
        "test can reach; x without write_empty_chunks goes through zarr's own write (no chunk "
        "of patches is all fill value); the writer pool's size (its writes cover disjoint "
        "whole chunks)",
        [f"tasks.polar.patches.x__cut_on_cluster__mutmut_{i}" for i in (76, 91, 104)]
        + ["tasks.polar.patches.x__find_all_candidates__mutmut_44",
           "tasks.polar.patches.x__ordered_results__mutmut_25",
           "tasks.polar.patches.x_find_candidates__mutmut_24",
           "tasks.polar.patches.x_write_shared_chunk__mutmut_26"]
        + [f"tasks.polar.patches.xǁ_PatchStoreǁ__init____mutmut_{i}" for i in (36, 70, 74)]
        # second stop-15 sample (the module's mutants renumbered after cut_part): one more
        # extract task; the throttle's window (i - 1, needed_from); tqdm's total; pure=True on
        # tasks with distinct arguments; pure patches' fast path also taking bad pure and mixed
        # good patches (rejected / recounted by the bincount after it); zip's strict after the
        # length check; max(initial=None) of never-empty labels; the bookkeeping error's text
        + ["tasks.polar.patches.x__cut_chosen__mutmut_60",
           "tasks.polar.patches.x__cut_on_cluster__mutmut_101",
           "tasks.polar.patches.x__cut_on_cluster__mutmut_106",
           "tasks.polar.patches.x__find_all_candidates__mutmut_40",
           "tasks.polar.patches.x__ordered_results__mutmut_39",
           "tasks.polar.patches.x__patch_counts_aligned__mutmut_37",
           "tasks.polar.patches.x_extract_patches__mutmut_28",
           "tasks.polar.patches.x_find_candidates__mutmut_23",
           "tasks.polar.patches.x_write_shared_chunk__mutmut_27"],
    ),
    # tasks/linked_data/export/exporter.py (H8)
    (
        "exporter: a rejection reason written for rows not (yet) rejected is overwritten when a "
        "later check rejects the row and never read when it is kept; emptiness tested on rows "
        "already rejected (is_empty(None) is False) only re-marks them; ids listed for every "
        "batch; a keep mask of all True filters nothing",
        [f"tasks.linked_data.export.exporter.x__check_geometries__mutmut_{i}" for i in (5, 13, 23)]
        + ["tasks.linked_data.export.exporter.x__record_rejected__mutmut_3"]
        + [f"tasks.linked_data.export.exporter.xǁRdfExporterǁwrite_batch__mutmut_{i}"
           for i in (70, 73)],
    ),
    (
        "exporter: the GeoArrow native WKT is the GEOS WKT text (same rounding, only faster); "
        "grid_cells computes the same bounds itself; needs_escape only skips the escape scan of "
        "WKT and grid labels, which hold no quote, backslash or line break",
        [f"tasks.linked_data.export.exporter.xǁRdfExporterǁwrite_batch__mutmut_{i}"
         for i in (129, 130, 132, 156)]
        + [f"tasks.linked_data.export.exporter.xǁRdfExporterǁ_write_geometries__mutmut_{i}"
           for i in (55, 58, 61, 64, 65, 68, 70, 84, 86, 87)],
    ),
    (
        "exporter: n_rows is unused by render_template when the template has a column field, and "
        "value[0] of a constant IRI is the same for 1 or 2 rows; literals ignore base and "
        "iri=None is falsy; zero_copy_only=None is falsy; zip's strict on equal-length lists; "
        "a constant property's prepared objects ([] or None) are never read; geoms, the map's "
        "geometry and all_bounds are None together, so 'and' / 'or' between them agree",
        [f"tasks.linked_data.export.exporter.xǁRdfExporterǁ_constant_object__mutmut_{i}"
         for i in (22, 34, 60, 61)]
        + ["tasks.linked_data.export.exporter.xǁRdfExporterǁ_row_ids__mutmut_14",
           "tasks.linked_data.export.exporter.xǁRdfExporterǁ_prepare_properties__mutmut_7"]
        + ["tasks.linked_data.export.exporter.xǁRdfExporterǁ_write_types_and_properties"
           f"__mutmut_{i}" for i in (16, 19, 26)]
        + [f"tasks.linked_data.export.exporter.xǁRdfExporterǁwrite_batch__mutmut_{i}"
           for i in (124, 125)],
    ),
    # tasks/linked_data/geometry.py (H8)
    (
        "the 'sliced GeoArrow array' ValueError is caught by wkb_to_crs84, which declines the fast "
        "path whatever its text; a null mask of all False is no mask; ListArray.from_arrays infers "
        "the storage's own list type; pa.array of float64 arrays is float64; an all-null batch is "
        "declined later anyway (no geometry type)",
        [f"tasks.linked_data.geometry.x__levels__mutmut_{i}" for i in (6, 7, 8, 9, 15, 16, 17, 18)]
        + [f"tasks.linked_data.geometry.x__rebuild__mutmut_{i}" for i in (14, 17, 21)]
        + [f"tasks.linked_data.geometry.x_wkb_to_crs84__mutmut_{i}" for i in (2, 73, 75, 77, 79)],
    ),
    # tasks/lucas/points.py (H8)
    (
        "to_numpy() without dtype: pd.to_numeric of numbers (nullable Float64 with NA too) is "
        "already float64 with NaN, or int64, which compares and assigns the same",
        [f"tasks.lucas.points.x__valid_coordinates__mutmut_{i}" for i in (2, 12)]
        + [f"tasks.lucas.points.x_resolve_point_locations__mutmut_{i}" for i in (84, 96, 155, 167)],
    ),
    (
        "NaN and inf fail every later check (sentinel distance, |lat| <= 90, |lon| <= 180), so the "
        "isfinite test may be or-ed or overwritten",
        [f"tasks.lucas.points.x__valid_coordinates__mutmut_{i}" for i in (22, 25)],
    ),
    (
        "'>' vs '>=' 1e-5 from the sentinel: no float64 near 88.888888 lies exactly 1e-5 away",
        [f"tasks.lucas.points.x__valid_coordinates__mutmut_{i}" for i in (30, 37)],
    ),
    (
        "pyproj reads 'epsg:4326' as 'EPSG:4326'; the CRS given to points_from_xy or to the "
        "GeoDataFrame alone sets EPSG:4326",
        [f"tasks.lucas.points.x_resolve_point_locations__mutmut_{i}"
         for i in (33, 208, 211, 213, 221, 224, 226)],
    ),
    (
        "np.full(n, None) instead of NaN: the rows left unset get a None geometry anyway",
        [f"tasks.lucas.points.x_resolve_point_locations__mutmut_{i}" for i in (51, 56)],
    ),
    (
        "a zero longitude with the west flag becomes -0.0: the same point",
        [f"tasks.lucas.points.x_resolve_point_locations__mutmut_{i}" for i in (129,)],
    ),
    (
        "geopandas replaces an existing 'geometry' column when geometry= is given",
        [f"tasks.lucas.points.x_resolve_point_locations__mutmut_{i}" for i in (202, 203)],
    ),
    (
        "check_geo_columns(required=None) is falsy like False; keep_default_na=True is read_csv's "
        "default; low_memory only changes type guessing in chunks of large files, and every "
        "column used is typed (text columns) or passed through to_numeric(errors='coerce')",
        [f"tasks.lucas.points.x_read_lucas_points__mutmut_{i}" for i in (17, 37, 38, 42)],
    ),
    (
        "the chart colours are '#rrggbb' from a fixed palette: no 'X' to strip, nothing past "
        "the sixth digit",
        ["tasks.polar.quicklook.x__rgb__mutmut_4", "tasks.polar.quicklook.x__rgb__mutmut_24"],
    ),
    (
        "a 257th colour-table row is never indexed: the chart raster is uint8 (0..255)",
        ["tasks.polar.quicklook.x_colourise__mutmut_6"],
    ),
    (
        "rasterio's read resamples with nearest by default",
        ["tasks.polar.quicklook.x_read_decimated__mutmut_33"],
    ),
    (
        "matplotlib colour, backend and interpolation names are case-insensitive; plt.close(None) "
        "closes the current figure, the one just made",
        [f"tasks.polar.quicklook.x_render_quicklook__mutmut_{i}"
         for i in (5, 6, 23, 35, 57, 97, 100)],
    ),
    (
        "savefig's default facecolor ('auto') is the figure's, white by default; more figure "
        "height is whitespace that bbox_inches='tight' crops (the image is width-limited: its "
        "height is the width times the chart's aspect)",
        [f"tasks.polar.quicklook.x_render_quicklook__mutmut_{i}" for i in (47, 89, 93)],
    ),
    (
        "always calling to_crs: reprojecting parcels already in the tile's CRS changes nothing",
        ["tasks.food_security.labels.x_label_tile__mutmut_20",
         "tasks.food_security.labels.x_label_tile__mutmut_22"],
    ),
    (
        "np.full(shape, -1) without dtype is int64 on 64-bit Linux, the dtype it asked for",
        ["tasks.food_security.labels.x_label_tile__mutmut_96",
         "tasks.food_security.labels.x_label_tile__mutmut_99"],
    ),
    (
        "np.nan_to_num's default nan is 0.0",
        ["tasks.food_security.labels.x_robust_outlier_mask__mutmut_77"],
    ),
    (
        "one more hex digit in a temporary's random suffix: still unique, still three '-' parts",
        ["tasks.storage.x__publish_by_pointer__mutmut_3",
         "tasks.storage.x__publish_by_pointer__mutmut_7",
         "tasks.storage.x__publish_by_pointer__mutmut_22",
         "tasks.storage.x_atomic_write_bytes__mutmut_11"],
    ),
    (
        "'>' vs '>=' on an age in float seconds against a 12 h limit: differs only on an exact tie",
        ["tasks.storage.x__is_abandoned__mutmut_23",
         "tasks.storage.x_clean_stale_versions__mutmut_75"],
    ),
    (
        "ctypes argtypes None: Python int and bytes are passed as C int and char* anyway (x86-64 "
        "and aarch64 calling conventions)",
        ["tasks.storage.x__load_renameat2__mutmut_11"],
    ),
    (
        "the link is made before the try and renamed away only by the last statement of either "
        "branch, so it exists whenever the except clause unlinks it",
        ["tasks.storage.x__publish_by_pointer__mutmut_37",
         "tasks.storage.x__publish_by_pointer__mutmut_38"],
    ),
    (
        "os.utime without times sets the current time: the instant `now` to within the "
        "microseconds between the two calls, far inside the 60 s grace it starts",
        ["tasks.storage.x__publish_by_pointer__mutmut_48",
         "tasks.storage.x__publish_by_pointer__mutmut_50"],
    ),
    (
        "s3fs lists `bucket/key/.v-{host}-{pid}-{hex}` with no leading or trailing '/' and a "
        "lowercase hex end, so other strip characters, rsplit's maxsplit 2 or none, and index +1 "
        "of a two-part split all give the same last component",
        [f"tasks.storage.x_clean_stale_versions__mutmut_{i}" for i in (23, 25, 26, 30, 32, 33)]
        + [f"tasks.storage.x_download_stage_dir__mutmut_{i}" for i in (20, 21, 23)],
    ),
    (
        "datetime.fromisoformat accepts 'Z' itself from Python 3.11 (requires-python >= 3.11)",
        ["tasks.storage.x_to_date__mutmut_9", "tasks.storage.x_to_date__mutmut_10"],
    ),
    (
        "np.errstate / warnings filters only silence floating-point warnings; the values are the "
        "same",
        [f"tasks.food_security.labels.x__ndvi_series__mutmut_{i}" for i in (28, 29, 30, 31)]
        + [f"tasks.food_security.labels.x_robust_outlier_mask__mutmut_{i}" for i in (20, 22, 57)],
    ),
    (
        "astype of an array that already has that dtype (NDVI of float32 bands is float32, "
        "gap_filled is stored as bool; int64 id columns): same values",
        ["tasks.food_security.labels.x__ndvi_series__mutmut_40",
         "tasks.food_security.labels.x__ndvi_series__mutmut_41",
         "tasks.food_security.labels.x_label_tile__mutmut_145",
         "tasks.food_security.labels.x_label_tile__mutmut_147"],
    ),
    (
        "zarr.open_group without mode='r' opens an existing store for reading the same way (the "
        "callers check the store exists)",
        ["tasks.food_security.labels.x__ndvi_series__mutmut_5",
         "tasks.food_security.labels.x_tile_grid_from_composite__mutmut_5"],
    ),
    (
        "zip's strict flag on np.unique's classes and counts, which always have the same length",
        [f"tasks.food_security.labels.x_label_tile__mutmut_{i}"
         for i in (197, 200, 201, 325, 328, 329)],
    ),
    (
        "buffer_m >= 0: a 0 m buffer rasterises the same polygons, so the border mask is empty "
        "and border_buffer stays {}",
        ["tasks.food_security.labels.x_label_tile__mutmut_202"],
    ),
    (
        "all_touched=None or omitted is rasterio's default all_touched=False",
        ["tasks.food_security.labels.x_rasterise_parcels__mutmut_29",
         "tasks.food_security.labels.x_rasterise_parcels__mutmut_35"],
    ),
    (
        "slice(None, n), slice(n) and slice(0, None) give the same range as slice(0, n) once "
        ".indices(n) is applied",
        [
            f"tasks.sentinel1.lut.x_window_axes__mutmut_{i}" for i in (4, 5, 6, 10, 11, 12)
        ],
    ),
    (
        'rows/cols keep their int dtype; they are only compared, subtracted from float64 lines '
        'or passed to np.interp, which give the same float64 values',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_3',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_5',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_8',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_10',
            'tasks.sentinel1.lut.x_interpolate_azimuth_blocks__mutmut_3',
            'tasks.sentinel1.lut.x_interpolate_azimuth_blocks__mutmut_5',
            'tasks.sentinel1.lut.x_interpolate_azimuth_blocks__mutmut_8',
            'tasks.sentinel1.lut.x_interpolate_azimuth_blocks__mutmut_10',
        ],
    ),
    (
        'int lines: l1 - l0 is exact and span/weight are float64 through np.where(..., 1.0) and'
        ' the division',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_13',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_15',
        ],
    ),
    (
        'the sort kind only matters for repeated annotated lines (S1 annotation lines are '
        'strictly increasing); numpy parses kind case-insensitively',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_18',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_20',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_22',
        ],
    ),
    (
        'a row on an annotated line k gets lo=k-1, hi=k, weight=1 instead of lo=k, weight=0: '
        'the same vector k',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_31',
        ],
    ),
    (
        'the removed/loosened clip bound can never bind: searchsorted(...) - 1 <= len(lines) - '
        '1 and pos + 1 >= 0',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_38',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_43',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_47',
        ],
    ),
    (
        'rows at/after the last line get lo=n-2, hi=n-1, weight=1: the last vector again (n=1: '
        'index -1 is the only vector)',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_44',
        ],
    ),
    (
        'hi >= 1 only changes hi for rows before the first line, where weight clips to 0 and '
        'only lo counts',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_54',
        ],
    ),
    (
        'span falls back only when lo and hi are the same vector (l1 == l0), so the weight does'
        ' not matter',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_84',
        ],
    ),
    (
        'weights leave [0, 1] only where lo == hi (outside the annotated lines), where (1-w)*a '
        '+ w*a == a to float64 rounding, below float32 precision',
        [
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_87',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_88',
            'tasks.sentinel1.lut.x_interpolate_range_vectors__mutmut_95',
        ],
    ),
    (
        "with no row (or no column) inside, the np.ix_ assignment selects nothing: 'and' just "
        'skips the no-op less often',
        [
            'tasks.sentinel1.lut.x_interpolate_azimuth_blocks__mutmut_24',
        ],
    ),
    (
        'the profile is stored into the float32 array out, which casts it anyway',
        [
            'tasks.sentinel1.lut.x_interpolate_azimuth_blocks__mutmut_50',
        ],
    ),
    (
        "zip's strict flag: the lengths were checked equal just above"
        ,
        [
            'tasks.sentinel1.lut.xǁRangeVectorsǁ__post_init____mutmut_11',
            'tasks.sentinel1.lut.xǁRangeVectorsǁ__post_init____mutmut_14',
            'tasks.sentinel1.lut.xǁRangeVectorsǁ__post_init____mutmut_15',
        ],
    ),
    # --- tasks/sentinel1/swath_geometry.py (H7, 2026-11-30) ---
    (
        "(lon - 180) % 360 and (lon + 180) % 360 are the same residue: -180 and +180 differ by 360",
        ["tasks.sentinel1.swath_geometry.xǁSwathGeometryǁsub_satellite__mutmut_36"],
    ),
    (
        "lonlat's lines only feed np.unique and sub_satellite / heading, which convert them to "
        "float64 themselves",
        ["tasks.sentinel1.swath_geometry.xǁSwathGeometryǁlonlat__mutmut_7",
         "tasks.sentinel1.swath_geometry.xǁSwathGeometryǁlonlat__mutmut_9"],
    ),
    (
        "the centre's latitude is strictly monotone over each half-orbit searched (checked over "
        "the 721 grid points): one sign change, found by a grid of 50 or 722 points alike; a grid "
        "running on past the turning point only adds later crossings (the first one is used) and "
        "no lower/higher latitude (the turning latitude is the extreme); comparing every value "
        "with the first one finds the same first sign change; a 61st halving of a bracket already "
        "at float64 resolution changes nothing",
        [f"tasks.sentinel1.swath_geometry.x_place_swath__mutmut_{i}"
         for i in (73, 79, 87, 92, 99, 123)],
    ),
    (
        "moving a grid end by 2e-3 rad across the turning point (u = pi/2, 3pi/2) moves the "
        "reachable latitude limit by < 2e-6 deg (0.2 m), printed to 0.01 deg; not testable "
        "robustly",
        ["tasks.sentinel1.swath_geometry.x_place_swath__mutmut_88",
         "tasks.sentinel1.swath_geometry.x_place_swath__mutmut_90"],
    ),
    # --- tasks/sentinel1/geocode.py (H7, 2026-11-30) ---
    (
        "dtype=None / no dtype where the array is float64 anyway or promoted to it at once: "
        "PlaneMap subtracts float64 offsets (numpy scalars promote float32/int inputs), "
        "to_image's inputs go through the PlaneMaps and x - fx with float64 fx, pyproj returns "
        "float64, the grid's heights only meet float64 tangents and exact comparisons, "
        "integer aranges / lines give the same float64 results after the first division",
        [f"tasks.sentinel1.geocode.xǁPlaneMapǁ__call____mutmut_{i}" for i in (3, 5, 8, 10)]
        + [f"tasks.sentinel1.geocode.xǁGeocodingǁto_image__mutmut_{i}" for i in (4, 6, 9, 11)]
        + [f"tasks.sentinel1.geocode.x_fit_geocoding__mutmut_{i}" for i in (6, 8, 11, 13)]
        + [f"tasks.sentinel1.geocode.x_image_coordinates__mutmut_{i}" for i in (4, 7, 13, 16)]
        + [f"tasks.sentinel1.geocode.x_sea_level_tie_points__mutmut_{i}" for i in (5, 7)]
        + [f"tasks.sentinel1.geocode.x_tie_points_in_crs__mutmut_{i}" for i in (25, 27, 30, 32)],
    ),
    (
        "np.errstate only silences floating-point warnings; the values are the same",
        [f"tasks.sentinel1.geocode.x__tps_kernel__mutmut_{i}" for i in (1, 2, 3, 4)]
        + [f"tasks.sentinel1.geocode.xǁGeocodingǁto_image__mutmut_{i}" for i in (53, 54, 55, 56)],
    ),
    (
        "the thin-plate kernel at r2 = 0: the outer np.where picks 0.0 there whatever the inner "
        "expression gives (0 * log 1 = 0, 0 * log 0 = nan, 0 * log 2 = 0)",
        [f"tasks.sentinel1.geocode.x__tps_kernel__mutmut_{i}" for i in (15, 27, 29)],
    ),
    (
        "np.linalg.lstsq's default rcond is None from NumPy 2.0 (the project requires numpy>=2)",
        ["tasks.sentinel1.geocode.x_fit_plane_map__mutmut_16",
         "tasks.sentinel1.geocode.x_fit_geocoding__mutmut_106"],
    ),
    (
        "einsum subscripts may be upper-case letters: 'IJ,JI->I' is the same contraction",
        ["tasks.sentinel1.geocode.x_fit_plane_map__mutmut_25"],
    ),
    (
        "an affine PlaneMap's weights are only checked for size (0 either way), never used",
        ["tasks.sentinel1.geocode.x_fit_plane_map__mutmut_53"],
    ),
    (
        "float('NAN') is nan",
        [f"tasks.sentinel1.geocode.x__stats__mutmut_{i}" for i in (5, 8, 11)],
    ),
    (
        "interpolate_lattice's positions lie inside the lattice (documented; image_coordinates "
        "starts the lattice at the first position): searchsorted(...) - 1 >= 0 so the lower "
        "clip never binds, and on a node side='left' gives the segment below with weight 1, "
        "the same value as side='right'",
        [f"tasks.sentinel1.geocode.x_interpolate_lattice__mutmut_{i}" for i in (13, 24, 56, 67)],
    ),
    (
        "the sort kind only orders repeated pixels of one tie-point line; fit_geocoding drops "
        "repeated tie points before the sea-level move, and numpy reads kind case-insensitively",
        [f"tasks.sentinel1.geocode.x_sea_level_tie_points__mutmut_{i}" for i in (30, 32, 34)],
    ),
    (
        "a line is skipped only when no point would move: with |h| >= 0.5 in the skip test "
        "the line is processed, but the move mask (|h| > 0.5) moves nothing more",
        ["tasks.sentinel1.geocode.x_sea_level_tie_points__mutmut_25"],
    ),
    (
        "fallback values inside np.where(move, ...) for points that do not move: masked by the "
        "outer np.where(move, ..., 0.0)",
        [f"tasks.sentinel1.geocode.x_sea_level_tie_points__mutmut_{i}" for i in (80, 81, 89)],
    ),
    (
        "PROJ reads authority codes case-insensitively ('epsg:4326'); pyproj marks a point it "
        "cannot project with inf in both x and y, so 'and' / 'or' over the two checks agree",
        ["tasks.sentinel1.geocode.x_tie_points_in_crs__mutmut_21",
         "tasks.sentinel1.geocode.x_tie_points_in_crs__mutmut_34"],
    ),
    # --- tasks/sentinel1/safe.py (H7, 2026-11-30) ---
    (
        "the sort kind only orders equal pixels, and the pixels of one tie-point line are "
        "distinct (numpy also reads kind case-insensitively); astype(None) is float64",
        [f"tasks.sentinel1.safe.xǁGeolocationGridǁas_range_vectors__mutmut_{i}"
         for i in (8, 10, 12, 14, 16)],
    ),
    (
        "dict.get's default None or [] before 'or [...]': both falsy, the same placeholder",
        [f"tasks.sentinel1.safe.xǁSafeProductǁrequire_polarisations__mutmut_{i}"
         for i in (16, 18)],
    ),
    (
        "the case of a parse cache's key: lower- or upper-casing gives one entry per "
        "polarisation either way (the file lookup upper-cases again)",
        ["tasks.sentinel1.safe.xǁSafeProductǁnoise__mutmut_2",
         "tasks.sentinel1.safe.xǁSafeProductǁannotation__mutmut_2",
         "tasks.sentinel1.safe.xǁSafeProductǁcalibration__mutmut_2"],
    ),
    (
        "the geolocation grid is the same in every polarisation's annotation of a product, so "
        "the reference polarisation's grid gives the same incidence angles",
        ["tasks.sentinel1.safe.xǁSafeProductǁincidence_angle__mutmut_2"],
    ),
    (
        "zip's strict flag over five arrays of one geolocation grid (equal lengths)",
        [f"tasks.sentinel1.safe.xǁSafeProductǁgcps__mutmut_{i}" for i in (8, 14, 15)],
    ),
    (
        "PROJ reads 'epsg:4326' like 'EPSG:4326'; lstsq's default rcond is None from NumPy 2.0; "
        "a warnings filter without a category only silences more warnings",
        ["tasks.sentinel1.safe.xǁSafeProductǁaffine_to__mutmut_10",
         "tasks.sentinel1.safe.xǁSafeProductǁaffine_to__mutmut_29",
         "tasks.sentinel1.safe.xǁSafeProductǁaffine_to__mutmut_35",
         "tasks.sentinel1.safe.xǁSafeProductǁread_dn__mutmut_31"],
    ),
    (
        "a dataObject without repID: _REP_KIND has no None, '' or 'XXXX' key, so it is skipped "
        "either way",
        [f"tasks.sentinel1.safe.xǁSafeProductǁ_parse_manifest__mutmut_{i}"
         for i in (144, 146, 150)],
    ),
    (
        "optional elements (required=False, or None which is falsy) never raise, so the file "
        "name passed for the missing-element message is never used",
        ["tasks.sentinel1.safe.xǁSafeProductǁ_parse_annotation__mutmut_14",
         "tasks.sentinel1.safe.xǁSafeProductǁ_parse_annotation__mutmut_15",
         "tasks.sentinel1.safe.xǁSafeProductǁcalibration__mutmut_109",
         "tasks.sentinel1.safe.xǁSafeProductǁcalibration__mutmut_110"],
    ),
    (
        "only the dn LUT may be absent (sigmaNought, betaNought and gamma are required) and it "
        "is the last kind, so 'break' and 'continue' end the loop alike",
        ["tasks.sentinel1.safe.xǁSafeProductǁcalibration__mutmut_90"],
    ),
    (
        "_local is only called with relative paths without empty parts; _text's xpaths all "
        "select elements, never strings (no @attr / text())",
        ["tasks.sentinel1.safe.x__local__mutmut_8", "tasks.sentinel1.safe.x__text__mutmut_9"],
    ),
    (
        "datetime.fromisoformat accepts a trailing 'Z' from Python 3.11 (requires-python >= "
        "3.11), and the zone is replaced by UTC anyway",
        ["tasks.sentinel1.safe.x_parse_time__mutmut_7",
         "tasks.sentinel1.safe.x_parse_time__mutmut_8"],
    ),
    (
        "a folder product's _prefix is never read (only the zip branches use it)",
        ["tasks.sentinel1.safe.xǁ_SafeFilesǁ__init____mutmut_4",
         "tasks.sentinel1.safe.xǁ_SafeFilesǁ__init____mutmut_5"],
    ),
    # --- tasks/polar/harmonise.py (H7, 2026-11-30) ---
    (
        "the grid transform comes from map_grid, always north-up (b = d = 0 exactly), so every "
        "variant of the axis-aligned test is true",
        [f"tasks.polar.harmonise.x__template__mutmut_{i}" for i in (16, 18, 19, 20, 23, 24, 25)],
    ),
    (
        "band labels as fixed-width unicode instead of object strings: the same values read "
        "back; the Dataset's attrs are applied again after rioxarray (ds.attrs.update(attrs))",
        [f"tasks.polar.harmonise.x__template__mutmut_{i}" for i in (12, 14, 46, 49)],
    ),
    # --- tasks/polar/harmonise.py (H4, 2026-11-30; HB renumbered run_harmonise, _compute_tiles and
    # harmonise_scene for the version of commit 41b06e8 / 6844ac7, the same diffs) ---
    (
        "np.errstate only silences warnings: the divisors are clamped by np.maximum (no "
        "division by zero, no 0/0), and the result is chosen by np.where",
        [f"tasks.polar.harmonise.x_block_average__mutmut_{i}" for i in (27, 28, 29, 30)]
        + [f"tasks.polar.harmonise.x_boxcar__mutmut_{i}" for i in (35, 36, 37, 38)],
    ),
    (
        "block_average's weight sum is a float32 count of valid pixels, >= 1 where used; the "
        "clamp 1 + 1e-12 is 1.0 in float32 (a weak Python scalar takes the array's dtype)",
        ["tasks.polar.harmonise.x_block_average__mutmut_49"],
    ),
    (
        "a float64 intermediate instead of float32 (noise subtraction, boxcar numerator): only "
        "more precise; the results are cast to float32",
        ["tasks.polar.harmonise.x_remove_noise_and_calibrate__mutmut_8",
         "tasks.polar.harmonise.x_boxcar__mutmut_14"],
    ),
    (
        "boxcar: a value of 1 instead of 0 at zero-weight pixels is multiplied by that zero "
        "weight; den is exactly 0 where no valid pixel is in the window (then num is 0 too, "
        "so num / 1e-6 = 0) and equals 1e-6 only by coincidence, so '>=' for '>' changes nothing",
        [f"tasks.polar.harmonise.x_boxcar__mutmut_{i}" for i in (23, 50)],
    ),
    (
        "rasterio's rasterize fills with 0 by default; zip's strict flag on the two index "
        "arrays of one STRtree query (always of equal length)",
        ["tasks.polar.harmonise.x_rasterise_land__mutmut_23"]
        + [f"tasks.polar.harmonise.x_land_per_tile__mutmut_{i}" for i in (35, 38, 39)],
    ),
    (
        "run_harmonise: an ingest manifest without 'scenes' gives None instead of [], both "
        "falsy, so the same 'lists no scenes' error; the prefix of the scratch folder's name",
        [f"tasks.polar.harmonise.x_run_harmonise__mutmut_{i}" for i in (22, 24, 59, 60, 61)],
    ),
    (
        "_template: da.full(..., None, dtype=float32) is NaN as well, and every pixel is "
        "written by its tile; rioxarray's write_crs(None) takes the CRS from the Dataset's "
        "'crs' attribute, set from the same cfg.target_crs",
        [f"tasks.polar.harmonise.x__template__mutmut_{i}" for i in (57, 101)],
    ),
    (
        "_compute_tiles: dask.delayed's pure flag only names the grid's key (the same value "
        "reaches every task); the config dumped in python mode validates to the same "
        "HarmoniseConfig in the task (any mode but 'json' is python mode); zip's strict flag on "
        "the tiles and their land subsets (one subset per tile by construction)",
        [f"tasks.polar.harmonise.x__compute_tiles__mutmut_{i}"
         for i in (6, 8, 9, 67, 68, 69, 72, 75, 76)],
    ),
    (
        "harmonise_scene's template write into atomic_dir's new empty folder (or a new S3 "
        "version): to_zarr's default "
        "mode 'w-' creates it like 'w'; computing the template (fill values) first is only "
        "slower, every pixel is then written by its tile; zarr 3 writes format 3 by default; "
        "consolidated metadata written early is rewritten by zarr.consolidate_metadata at the "
        "end; ignoring every warning category while consolidating, not just UserWarning",
        [f"tasks.polar.harmonise.x_harmonise_scene__mutmut_{i}"
         for i in (90, 91, 92, 93, 95, 96, 97, 98, 107, 109, 128)],
    ),
    (
        "_process_tile's buffers end in the store's float32 / uint8 arrays: a float64 buffer, "
        "None for NaN in a float32 fill, an object array with None where not valid, or a "
        "float64 valid mask store the same values (and count the same statistics); "
        "zarr.open_group's default mode 'a' on the existing store acts like 'r+'",
        [f"tasks.polar.harmonise.x__process_tile__mutmut_{i}"
         for i in (61, 62, 65, 68, 70, 196, 232)],
    ),
    (
        "the radar window's halo: multilook is at most 15 (config), so multilook // 3 + 2 still "
        "covers the boxcar's reach multilook // 2 (7); one row / column less at the far end "
        "still holds the boxcar neighbourhood of the last bilinear neighbour (the halo has 2 "
        "to spare); a larger window gives the same pixels",
        [f"tasks.polar.harmonise.x__process_tile__mutmut_{i}"
         for i in (74, 75, 90, 94, 109, 113)],
    ),
    # --- tasks/polar/harmonise.py (HB, 2026-11-30; numbering of 41b06e8 / 6844ac7) ---
    (
        "harmonise_scene: a local temporary folder given to to_zarr / zarr.consolidate_metadata "
        "as a Path or as its string (zarr_store of a local folder is str(folder)) is the same "
        "local store; on S3 tmp is the URL string either way",
        [f"tasks.polar.harmonise.x_harmonise_scene__mutmut_{i}" for i in (83, 133)],
    ),
    (
        "_harmonise_on_workers: rsplit('/', 1) of a store URL (always with a '/') has exactly "
        "two parts, so index +1 is index -1",
        ["tasks.polar.harmonise.x__harmonise_on_workers__mutmut_55"],
    ),
    # --- tasks/food_security/harmonise.py (HB, 2026-11-30; numbering of 9712e57) ---
    (
        "list_s3_acquisitions: the last part of a name split at every '/' or at the last two is "
        "the same as at the last one; fsspec's cat treats any on_error but 'raise' / 'omit' as "
        "'return'; cat's keys are the paths without 's3://', so the first lookup always finds "
        "the item and the fallback key (item_url as given) is never read",
        [f"tasks.food_security.harmonise.x_list_s3_acquisitions__mutmut_{i}"
         for i in (18, 27, 54, 70)],
    ),
    # --- tasks/zarr_direct.py (stop 15) ---
    (
        "zarr_direct: zip's strict on sequences of equal length by construction (one bound, "
        "chunk size, origin per dimension); no other chunk grid or chunk key encoding exists in "
        "zarr 3.1; the machine is little-endian and the dtype kinds are single letters; a v3 "
        "array always has a serializer; 1-byte dtypes have no endianness (endian None); a full "
        "chunk padded to its own size is itself; the fill value is a numpy scalar of the array's "
        "dtype (np.full infers it); chunk_n is not read when there is no layout (the `or` "
        "short-circuits)",
        [f"tasks.zarr_direct.x_read_window__mutmut_{i}" for i in (
            9, 12, 13, 38, 41, 42, 57, 61, 62, 67, 70, 71, 76, 79, 80, 102, 107, 108, 130, 135,
            136)]
        + [f"tasks.zarr_direct.x__layout__mutmut_{i}" for i in (5, 9, 11, 21, 34)]
        + [f"tasks.zarr_direct.x_write_rows__mutmut_{i}" for i in (9, 51, 55, 58)],
    ),
    # composite_region's entry (mutant 80: a third DN validity buffer) was dropped when the function
    # changed in stop 15 (its mutant numbers moved); re-analyse it.
    # --- tasks/food_security/labels.py (H4, 2026-11-30) ---
    (
        "np.full(shape, -1) is int64 without the dtype (numpy's default integer on the 64-bit "
        "platforms the project runs on); write_label_store into a new path: to_zarr's default "
        "mode 'w-' creates it like 'w', zarr 3 writes format 3 by default, consolidated "
        "metadata only adds a copy of the same metadata; the labels settings (str, numbers, "
        "booleans) dump to the same JSON in python mode",
        [f"tasks.food_security.labels.x__outside_parcel_map__mutmut_{i}" for i in (36, 39)]
        + [f"tasks.food_security.labels.x_write_label_store__mutmut_{i}"
           for i in (51, 52, 53, 56, 57, 58, 63)]
        + [f"tasks.food_security.labels.x_run_labels__mutmut_{i}" for i in (109, 110, 111)],
    ),
    (
        "labels (numbering of 2026-11-30): zip's strict flag on np.unique's classes and counts "
        "(equal length); errstate only silences warnings; NDVI kept float64 is only more "
        "precise; gap flags as 0.0 / 1.0 floats select the same months in np.where / all(); a "
        "0 m buffer is the polygon itself (the same pixel centres, nothing removed); parcel ids "
        "of an integer column or index are int64 without the dtype too",
        [f"tasks.food_security.labels.x__count_removed__mutmut_{i}" for i in (13, 16, 17)]
        + [f"tasks.food_security.labels.x_label_tile__mutmut_{i}"
           for i in (90, 92, 168, 171, 172)]
        + [f"tasks.food_security.labels.x__ndvi_series__mutmut_{i}"
           for i in (33, 34, 35, 36, 45, 46)]
        + ["tasks.food_security.labels.x__reliable_pixels__mutmut_12"],
    ),
    # tasks/polar/predict.py (HA, 2026-11-30)
    (
        "GDAL driver names, creation-option names and values are case-insensitive "
        "(GTiff / gtiff, COG / cog, DEFLATE / deflate, NEAREST / nearest, TILED / tiled)",
        [f"tasks.polar.predict.x_write_chart_cog__mutmut_{i}"
         for i in (23, 43, 46, 49, 52, 54, 167, 169, 171)]
        + [f"tasks.polar.predict.x__write_cut_chart__mutmut_{i}" for i in (39, 41, 43)],
    ),
    (
        "layout of the temporary GeoTIFF only (tiling, block size option dropped, compression "
        "dropped): the COG copy re-tiles it at 512 px with DEFLATE, the pixels are the same",
        [f"tasks.polar.predict.x_write_chart_cog__mutmut_{i}" for i in (42, 44, 45, 48, 51)],
    ),
    (
        "strip height of write_chart_cog is memory only (the chart is the same for any strip "
        "height, test_write_chart_cog_pixels_georeference_tags_and_counts); 1025 // 8 * 8 == 1024",
        ["tasks.polar.predict.x_write_chart_cog__mutmut_1"],
    ),
    (
        "float64 instead of int64 pixel counters: bincount adds whole numbers, exact below "
        "2^53 pixels, and the counts are returned through int()",
        [f"tasks.polar.predict.x_write_chart_cog__mutmut_{i}" for i in (11, 13)],
    ),
    (
        "shapely's simplify preserves topology by default",
        ["tasks.polar.predict.x_write_class_polygons__mutmut_70"],
    ),
    (
        "class_map without RowStrips reads each tile window from the scene directly: the same "
        "values (RowStrips only saves decoding chunk rows twice); zip's strict flag on a batch "
        "and its class maps, one per tile",
        [f"tasks.polar.predict.xǁScenePredictorǁclass_map__mutmut_{i}" for i in (58, 112)],
    ),
    (
        "overlap only chooses background threads or the caller's thread for reading / storing "
        "batches: the same calls in the same order; read_normalised's window is cast to float32 "
        "by normalise_bands anyway",
        ["tasks.polar.predict.xǁScenePredictorǁ_executor__mutmut_1",
         "tasks.polar.predict.xǁScenePredictorǁread_normalised__mutmut_42"],
    ),
    (
        "RowStrips.rows concatenating a single strip part returns a copy of the same values "
        "instead of a view (callers only read it)",
        ["tasks.polar.predict.xǁRowStripsǁrows__mutmut_49"],
    ),
    (
        "name of the scratch sub-folder the S3 model is downloaded into, inside a temporary "
        "folder removed afterwards; never reported (the manifest names the s3:// URL)",
        ["tasks.polar.predict.x__run_predict_s3__mutmut_62"],
    ),
    (
        "np.nan_to_num: copy=None is falsy like False (in place); nan=0.0 is its default",
        [f"tasks.polar.predict.x_normalise_bands__mutmut_{i}" for i in (19, 25)],
    ),
    (
        "rio_crs None makes `rio_crs.to_string()` raise AttributeError, caught by the same "
        "try: crs stays None and the scene is refused exactly as before",
        ["tasks.polar.predict.x_scene_georeference__mutmut_16"],
    ),
]
EQUIVALENT: dict[str, str] = {
    name: reason for reason, names in _EQUIVALENT_GROUPS for name in names
}

# mutmut exit codes (mutmut.stats.status_by_exit_code) folded into the categories of the report.
_KILLED = {1, 3, 37}
_SURVIVED = {0}
_TIMEOUT = {36, -24, 24, 152, 255}
_NO_TESTS = {5, 33}


def _copy_tree(destination: Path, committed: bool = False) -> None:
    """Copy the working tree's tracked and untracked-but-not-ignored files to ``destination``.

    ``committed``: the files of the last commit instead (``git archive HEAD``), so that
    uncommitted edits of others in a shared working tree do not enter the run.
    """
    if committed:
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=REPO,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
        return
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        relative = raw.decode()
        source = REPO / relative
        if not source.is_file():  # deleted in the working tree
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _mutmut_config(module: str, tests: list[str], *, forkserver: bool = False,
                   timeout_multiplier: float | None = None) -> str:
    """The ``[tool.mutmut]`` section for one module (TOML text).

    ``forkserver``: mutmut's ``process_isolation = "forkserver"`` (a fresh interpreter per mutant
    instead of a fork of the runner: zarr writer threads inherited by a fork could hang a mutant
    for minutes at 0 CPU). ``timeout_multiplier``: mutmut's per-mutant limit as a multiple of the
    clean run's test time (its default is tight for a loaded machine).
    """
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    text = (
        "\n[tool.mutmut]\n"
        f"source_paths = {toml_list([module])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        'also_copy = ["tasks", "operators", "configs", "dags", "tests"]\n'
    )
    if forkserver:
        text += 'process_isolation = "forkserver"\n'
    if timeout_multiplier is not None:
        text += f"timeout_multiplier = {float(timeout_multiplier)!r}\n"
    return text


#: Seed of ``--sample``'s draw (numpy ``default_rng``): the same sample on every machine.
SAMPLE_SEED = 19


def draw_sample(names: list[str], n: int, seed: int = SAMPLE_SEED) -> list[str]:
    """Return a seeded random sample of ``n`` mutant names (all when ``n`` >= their count)."""
    import numpy as np

    ordered = sorted(names)
    if n >= len(ordered):
        return ordered
    picked = np.random.default_rng(seed).choice(ordered, size=n, replace=False)
    return sorted(str(p) for p in picked)


def _source_label(committed: bool) -> str:
    """Which code a run mutated: ``commit <sha>`` or ``working tree at <sha>``."""
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    return f"commit {sha}" if committed else f"working tree at {sha}"


def _classify(exit_code: int | None) -> str:
    if exit_code in _KILLED:
        return "killed"
    if exit_code in _SURVIVED:
        return "survived"
    if exit_code in _TIMEOUT:
        return "timeout"
    if exit_code in _NO_TESTS:
        return "no tests"
    if exit_code is None:
        return "not checked"
    return "suspicious"


_DIFF_SCRIPT = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
path, names = sys.argv[1], sys.argv[2:]
print(json.dumps({n: get_diff_for_mutant(n, path=path) for n in names}))
"""


def _diffs(work: Path, module: str, names: list[str], env: dict[str, str]) -> dict[str, str]:
    """Return mutmut's diff of each mutant in ``names`` (one process for all of them)."""
    shown = subprocess.run(
        [sys.executable, "-c", _DIFF_SCRIPT, module, *names],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(shown.stdout)


def run_module(module: str, tests: list[str], *, max_children: int, timeout_s: float,
               committed: bool = False, only: list[str] | None = None,
               module_ref: str | None = None, sample: int | None = None,
               forkserver: bool = False, timeout_multiplier: float | None = None) -> dict:
    """Run mutmut on one module in a temporary copy of the tree and return its summary.

    ``only``: run just these mutants (names); the summary then covers only them.
    ``module_ref``: mutate the module as it was at this commit (the rest of the tree as chosen),
    e.g. to re-run the survivors of an earlier run after the module changed meanwhile.
    ``sample``: run a seeded random sample of this many of the module's mutants
    (:func:`draw_sample`); the summary records ``sampled_from`` (the module's mutant count).
    """
    with tempfile.TemporaryDirectory(prefix="eeflow-mutation-") as tmp:
        work = Path(tmp)
        source = _source_label(committed)  # before the copy: HEAD may move meanwhile
        _copy_tree(work, committed)
        if module_ref:
            old = subprocess.run(["git", "show", f"{module_ref}:{module}"], cwd=REPO,
                                 check=True, capture_output=True).stdout
            (work / module).write_bytes(old)
            source += f", {module} of {module_ref}"
        with (work / "pyproject.toml").open("a") as pyproject:
            pyproject.write(_mutmut_config(module, tests, forkserver=forkserver,
                                           timeout_multiplier=timeout_multiplier))
        mutmut = [sys.executable, "-m", "mutmut"]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        started = dt.datetime.now(dt.UTC)
        sampled_from = None
        if sample is not None and only is None:
            only, sampled_from = _sample_mutants(work, module, mutmut, env, sample, timeout_s)
        try:
            completed = subprocess.run(
                [*mutmut, "run", "--max-children", str(max_children), *(only or [])],
                cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s,
            )
            run_error = None if completed.returncode == 0 else completed.stderr[-2000:]
        except subprocess.TimeoutExpired:
            run_error = f"mutmut run exceeded {timeout_s:.0f} s; partial results"
        meta_path = work / "mutants" / (module + ".meta")
        exit_codes: dict[str, int | None] = (
            json.loads(meta_path.read_text())["exit_code_by_key"] if meta_path.exists() else {}
        )
        if only:
            exit_codes = {n: c for n, c in exit_codes.items() if n in set(only)}
        statuses = {}
        for name, exit_code in exit_codes.items():
            status = _classify(exit_code)
            statuses[name] = "equivalent" if status == "survived" and name in EQUIVALENT else status
        shown = [n for n, s in statuses.items()
             if s in {"survived", "equivalent", "suspicious", "timeout"}]
        diffs = _diffs(work, module, shown, env) if shown else {}
        mutants = []
        for name in sorted(statuses):
            entry: dict = {"name": name, "status": statuses[name], "exit_code": exit_codes[name]}
            if name in diffs:
                entry["diff"] = diffs[name]
            if name in EQUIVALENT:
                entry["reason"] = EQUIVALENT[name]
            mutants.append(entry)
    summary = {"module": module, "tests": tests, "date": started.date().isoformat(),
               "source": source,
               "seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
               "error": run_error}
    if sampled_from is not None:
        summary["sampled_from"] = sampled_from
        summary["note"] = (f"seeded random sample of {len(statuses)} of the module's "
                           f"{sampled_from} mutants (numpy default_rng({SAMPLE_SEED}))")
    elif only:
        summary["rerun_names"] = sorted(statuses)  # the mutants this run checked
    result = _summarise(summary, mutants)
    if sampled_from is not None:
        result["sampled_from"] = sampled_from
    return result


def _sample_mutants(work: Path, module: str, mutmut: list[str], env: dict[str, str], n: int,
                    timeout_s: float) -> tuple[list[str], int]:
    """Generate the module's mutants (running none), draw ``n``; return (names, total)."""
    subprocess.run([*mutmut, "run", "--max-children", "1", "no.such.mutant"], cwd=work, env=env,
                   capture_output=True, text=True, timeout=timeout_s)
    meta_path = work / "mutants" / (module + ".meta")
    if not meta_path.exists():
        raise RuntimeError(f"mutmut generated no mutants for {module} in {work}: check the "
                           "module path and its [tool.mutmut] tests")
    names = list(json.loads(meta_path.read_text())["exit_code_by_key"])
    return draw_sample(names, n), len(names)


def merge_rerun(stored: dict, rerun: dict) -> dict:
    """Fold a run of some of a module's mutants (``run_module(only=...)``) into its stored summary.

    The re-run mutants replace their stored entries; the others keep their stored status. The
    summary notes the re-run (date, source, seconds) beside the first run's.
    """
    names = set(rerun["rerun_names"])
    kept = [m for m in stored["not_killed"] if m["name"] not in names]
    killed = stored["killed"] + rerun["killed"]
    summary = {k: stored[k] for k in ("module", "tests", "date", "seconds", "error")}
    summary["source"] = stored.get("source")
    for key in ("sampled_from", "note"):  # a re-run of a sample's mutants is still that sample
        if key in stored:
            summary[key] = stored[key]
    summary["rerun"] = {k: rerun[k] for k in ("date", "source", "seconds", "error", "tests")}
    summary["rerun"]["mutants"] = rerun["mutants"]
    return _summarise(summary, [{"status": "killed"}] * killed + kept + rerun["not_killed"])


def _summarise(summary: dict, mutants: list[dict]) -> dict:
    """Add the counts, kill rates and the list of mutants not killed to ``summary``."""
    counts = {s: sum(m["status"] == s for m in mutants) for s in
              ("killed", "survived", "equivalent", "timeout", "no tests", "suspicious",
               "not checked")}
    non_equivalent = len(mutants) - counts["equivalent"]
    # Only failing tests count as kills: a timeout may be a slow fixture on a busy machine rather
    # than a detected change, so it is reported apart and counted as not killed.
    detected = counts["killed"]
    return {
        **summary,
        "mutants": len(mutants),
        **counts,
        # "no tests": no selected test calls the mutated function; counted as not killed here,
        # and left out of the second figure (mutants the selected tests reach).
        "kill_rate_non_equivalent": round(detected / non_equivalent, 4) if non_equivalent else None,
        "kill_rate_reached": (
            round(detected / (non_equivalent - counts["no tests"]), 4)
            if non_equivalent > counts["no tests"] else None
        ),
        "not_killed": [m for m in mutants if m["status"] != "killed"],
    }


@contextlib.contextmanager
def _results_lock() -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``bench/results`` for a read-modify-write of its reports.

    Several runs of this script (one module each) may finish at the same time; without the lock
    the later writer would drop the module the earlier one had just merged into mutation.json.
    The lock is on the folder itself, so no lock file appears in the working tree.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(RESULTS_DIR, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def _read_results() -> dict:
    json_path = RESULTS_DIR / "mutation.json"
    return json.loads(json_path.read_text()) if json_path.exists() else {}


def reclassify(stored: dict) -> list[dict]:
    """Re-apply ``EQUIVALENT`` to stored results (after reviewing survivors; no re-run)."""
    summaries = []
    for summary in stored.values():
        not_killed = summary.pop("not_killed")
        n_killed = summary["killed"]
        for mutant in not_killed:
            if mutant["status"] in {"survived", "equivalent"}:
                mutant["status"] = "equivalent" if mutant["name"] in EQUIVALENT else "survived"
                mutant.pop("reason", None)
                if mutant["name"] in EQUIVALENT:
                    mutant["reason"] = EQUIVALENT[mutant["name"]]
        killed = [{"status": "killed"}] * n_killed
        summaries.append(_summarise(summary, killed + not_killed))
    return summaries


def write_reports(summaries: list[dict] | None) -> None:
    """Merge ``summaries`` into mutation.json and rewrite the survivors' markdown list.

    ``None`` re-applies ``EQUIVALENT`` to every stored module instead (``--reclassify``). The
    read, merge and both writes happen under ``_results_lock``.
    """
    with _results_lock():
        by_module = _read_results()
        if summaries is None:
            summaries = reclassify(json.loads(json.dumps(by_module)))
        by_module.update({s["module"]: s for s in summaries})
        _replace_text(RESULTS_DIR / "mutation.json",
                      json.dumps(by_module, indent=1, sort_keys=True) + "\n")
        _replace_text(RESULTS_DIR / "mutation_survivors.md", _survivors_markdown(by_module))


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary and a rename (readers never see half)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _survivors_markdown(by_module: dict) -> str:
    """The survivors of every module as markdown (bench/results/mutation_survivors.md)."""
    lines = ["# Surviving mutants", "", "Written by `bench/mutation.py` (`make mutation`).", ""]
    for module, summary in sorted(by_module.items()):
        rate = summary["kill_rate_non_equivalent"]
        lines += [
            f"## {module} ({summary['date']})",
            "",
            f"{summary['mutants']} mutants: {summary['killed']} killed, "
            f"{summary['timeout']} timeout, {summary['survived']} survived, "
            f"{summary['equivalent']} equivalent, {summary['no tests']} not reached by the tests; "
            "kill rate of the non-equivalent: "
            + (f"{rate:.1%}" if rate is not None else "n/a")
            + (f" ({summary['kill_rate_reached']:.1%} of those the tests reach)"
               if summary["kill_rate_reached"] is not None else "")
            + (f". Run error: {summary['error']}" if summary["error"] else "")
            + (f". The not-killed mutants re-run on {summary['rerun']['date']} "
               f"({summary['rerun']['source']}, {summary['rerun']['mutants']} mutants)"
               if summary.get("rerun") else ""),
            "",
        ]
        for mutant in summary["not_killed"]:
            if mutant["status"] == "no tests":
                continue
            reason = f" (equivalent: {mutant['reason']})" if mutant.get("reason") else ""
            lines.append(f"- `{mutant['name']}`: {mutant['status']}{reason}")
            diff = [d for d in mutant.get("diff", "").splitlines()
                    if d.startswith(("+", "-")) and not d.startswith(("+++", "---"))]
            if diff:
                lines += ["  ```diff", *("  " + d for d in diff), "  ```"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the chosen modules (default all of MODULES) and write the reports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES),
                        help="module to mutate (repeatable); default: all")
    parser.add_argument("--max-children", type=int, default=2,
                        help="parallel mutant runs (the project machines have 2 shared cores)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds one module's mutmut run may take")
    parser.add_argument("--tests", action="append", default=[],
                        help="extra test file/folder for the chosen modules (repeatable)")
    parser.add_argument("--reclassify", action="store_true",
                        help="re-apply EQUIVALENT to bench/results/mutation.json without a run")
    parser.add_argument("--list", action="store_true", help="list the modules and their tests")
    parser.add_argument("--rerun-not-killed", action="store_true",
                        help="run only the mutants mutation.json lists as not killed (survived, "
                        "timeout, ...; not the equivalent ones) and merge the result into it")
    parser.add_argument("--module-ref", default=None,
                        help="mutate the module as it was at this commit (with the tests of the "
                        "working tree or --committed)")
    parser.add_argument("--committed", action="store_true",
                        help="mutate the last commit (git archive HEAD), not the working tree")
    parser.add_argument("--sample", type=int, default=None,
                        help="run a seeded random sample of N mutants per module (the 2026-11-30 "
                        "figures of crop samples/train/harmonise and polar patches)")
    parser.add_argument("--forkserver", action="store_true",
                        help="mutmut process_isolation = forkserver (fresh interpreter per mutant)")
    parser.add_argument("--timeout-multiplier", type=float, default=None,
                        help="mutmut's per-mutant time limit as a multiple of the clean test time")
    args = parser.parse_args(argv)
    if args.reclassify:
        write_reports(None)
        return 0
    if args.list:
        for module, tests in MODULES.items():
            print(module, "<-", " ".join(tests))
        return 0
    for module in args.module or list(MODULES):
        stored = _read_results().get(module) if args.rerun_not_killed else None
        only = None
        if stored is not None:
            only = [m["name"] for m in stored["not_killed"] if m["status"] != "equivalent"]
            if not only:
                print(f"{module}: nothing to re-run", flush=True)
                continue
        summary = run_module(module, MODULES[module] + args.tests, max_children=args.max_children,
                             timeout_s=args.timeout, committed=args.committed, only=only,
                             module_ref=args.module_ref, sample=args.sample,
                             forkserver=args.forkserver,
                             timeout_multiplier=args.timeout_multiplier)
        if stored is not None and only is not None:
            summary = merge_rerun(stored, summary)
        print(f"{module}: {summary['mutants']} mutants, {summary['killed']} killed, "
              f"{summary['timeout']} timeout, {summary['survived']} survived, "
              f"{summary['equivalent']} equivalent, {summary['no tests']} no tests, "
              f"rate {summary['kill_rate_non_equivalent']} (reached {summary['kill_rate_reached']})"
              + (f" [error: {summary['error'][:200]}]" if summary["error"] else ""), flush=True)
        write_reports([summary])  # after each module, so an interrupted run keeps what it did
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
