"""GX file data context plumbing for :mod:`custpipe.quality.gx_runner`.

Everything here imports great_expectations lazily (inside functions) and is internal.

Layout of ``gx_dir``::

    great_expectations.yml      generated on every run (fluent datasources are preserved)
    validations/                scrubbed validation results (_gx_store.ValidationResultsStore)
    validation_definitions/     one per suite
    checkpoints/                one per suite
    data_docs/                  local Data Docs site (index.html)

The expectations store is a TupleFilesystemStoreBackend whose ``base_directory`` is the
absolute path of the repository's ``expectations/`` folder, so suites are read in place
(never copied); ``suppress_store_backend_id`` keeps GX from writing a ``.ge_store_backend_id``
file there and the store class (``_gx_store.ExpectationsStore``) refuses all writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import filecmp
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
import yaml

DATASOURCE_NAME = "custpipe_pandas"
BATCH_DEFINITION_NAME = "whole_frame"
SITE_NAME = "local_site"
DOCS_DIRNAME = "data_docs"
VALIDATIONS_DIRNAME = "validations"
GX_YML = "great_expectations.yml"

_PROCESS_LOCK = threading.Lock()

# libyaml's safe loader and dumper where PyYAML has them (~10x faster, the same data)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _store(class_name: str, base_directory: str, module_name: str | None = None) -> dict:
    cfg: dict[str, Any] = {
        "class_name": class_name,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": base_directory,
            "suppress_store_backend_id": True,
        },
    }
    if module_name:
        cfg["module_name"] = module_name
    return cfg


def build_project_config(expectations_dir: Path, validation_results_limit: int) -> dict:
    """Return the great_expectations.yml content (without fluent datasources)."""
    return {
        "config_version": 4.0,
        "progress_bars": {"globally": False, "metric_calculations": False},
        "stores": {
            "expectations_store": _store(
                "ExpectationsStore",
                str(expectations_dir.resolve()),
                module_name="custpipe.quality._gx_store",
            ),
            "validation_results_store": _store(
                "ValidationResultsStore",
                f"{VALIDATIONS_DIRNAME}/",
                module_name="custpipe.quality._gx_store",
            ),
            "checkpoint_store": _store("CheckpointStore", "checkpoints/"),
            "validation_definition_store": _store(
                "ValidationDefinitionStore", "validation_definitions/"
            ),
        },
        "expectations_store_name": "expectations_store",
        "validation_results_store_name": "validation_results_store",
        "checkpoint_store_name": "checkpoint_store",
        "data_docs_sites": {
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": f"{DOCS_DIRNAME}/",
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": validation_results_limit,
                },
            }
        },
    }


@contextlib.contextmanager
def locked(gx_dir: Path) -> Iterator[None]:
    """Serialise access to one gx_dir across threads and processes (GX state is global)."""
    gx_dir.mkdir(parents=True, exist_ok=True)
    with _PROCESS_LOCK, open(gx_dir / ".custpipe.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled jinja2 templates, kept in memory for the process."""

    def __init__(self) -> None:
        self.codes: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.codes:
            bucket.bytecode_from_string(self.codes[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.codes[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = _CompiledTemplates()


def share_compiled_templates() -> None:
    """Give every GX Data Docs view :data:`COMPILED_TEMPLATES`: GX makes a new jinja2
    environment per page, and compiling its templates again took ~0.1 s of each page
    (~1 s a night). Only the compiling is skipped: every page is rendered as before."""
    from great_expectations.render.view import view

    make = view.DefaultJinjaView.__init__
    if getattr(make, "shares_compiled_templates", False):
        return

    def init(self, *args, **kwargs) -> None:
        make(self, *args, **kwargs)
        if self.env.bytecode_cache is None:
            self.env.bytecode_cache = COMPILED_TEMPLATES

    init.shares_compiled_templates = True
    view.DefaultJinjaView.__init__ = init


def _same_files(source: Path, target: Path) -> bool:
    """True when every file under `source` is under `target` too, with the same bytes."""
    for path in source.rglob("*"):
        if path.is_file() and path.name != ".DS_Store":
            copy = target / path.relative_to(source)
            if not (copy.is_file() and filecmp.cmp(path, copy, shallow=False)):
                return False
    return True


def copy_static_assets_when_changed() -> None:
    """GX copies its Data Docs static assets (20 files, 4 MB of CSS, scripts and fonts) into
    the site on every build (~0.03 s of each validation): copy them only when the site's
    copy is missing or differs from GX's (a new GX version, a file removed)."""
    from great_expectations.data_context.store import html_site_store
    from great_expectations.data_context.store.tuple_store_backend import (
        TupleFilesystemStoreBackend,
    )

    store = html_site_store.HtmlSiteStore
    copy = store.copy_static_assets
    if getattr(copy, "copies_when_changed", False):
        return
    assets = Path(html_site_store.__file__).parents[2] / "render" / "view" / "static"

    def copy_when_changed(self, static_assets_source_dir: str | None = None):
        backend = self.store_backends["static_assets"]
        if static_assets_source_dir is None and isinstance(backend, TupleFilesystemStoreBackend):
            site = Path(backend.full_base_directory) / "static"
            if assets.is_dir() and _same_files(assets, site):
                return None
        return copy(self, static_assets_source_dir)

    copy_when_changed.copies_when_changed = True
    store.copy_static_assets = copy_when_changed


def open_context(gx_dir: Path, expectations_dir: Path, validation_results_limit: int):
    """(Re)write gx_dir/great_expectations.yml and return a GX FileDataContext on it.

    A new context every time: one kept for the process held on to what a validation of a
    million rows left in it (the 1M first run's later steps grew by ~1.5 GB)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    from custpipe.quality import expectations as custom_expectations

    custom_expectations.register()  # before the context can read any suite
    share_compiled_templates()
    copy_static_assets_when_changed()
    yml_path = gx_dir / GX_YML
    config = build_project_config(expectations_dir, validation_results_limit)
    before = yml_path.read_text(encoding="utf-8") if yml_path.exists() else None
    if before is not None:
        previous = yaml.load(before, Loader=_LOADER) or {}
        if previous.get("fluent_datasources"):
            config["fluent_datasources"] = previous["fluent_datasources"]
    text = yaml.dump(config, Dumper=_DUMPER, sort_keys=False)
    if text != before:  # most nights: as the last validation left it
        yml_path.write_text(text, encoding="utf-8")
    return gx.get_context(mode="file", context_root_dir=str(gx_dir.resolve()))


def ensure_checkpoint(context, suite, *, result_format: dict, engine: str = "pandas"):
    """Get-or-create datasource, asset, batch definition, validation definition, checkpoint
    (`engine` pandas, or spark: a Spark data source and objects of their own).

    Idempotent: existing objects are reused; the checkpoint is updated only when its
    result format differs from what this run needs, or it has actions (Data Docs are built
    by :func:`build_docs`, not by the checkpoint).
    """
    import great_expectations as gx
    from great_expectations.exceptions import DataContextError

    spark = engine == "spark"
    name = f"{suite.name} on spark" if spark else suite.name
    source_name = f"{DATASOURCE_NAME}_spark" if spark else DATASOURCE_NAME
    try:
        datasource = context.data_sources.get(source_name)
    except KeyError:
        add = context.data_sources.add_spark if spark else context.data_sources.add_pandas
        datasource = add(source_name)
    try:
        asset = datasource.get_asset(name)
    except LookupError:
        asset = datasource.add_dataframe_asset(name)
    try:
        batch_definition = asset.get_batch_definition(BATCH_DEFINITION_NAME)
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)

    try:
        validation = context.validation_definitions.get(name)
    except DataContextError:
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )

    try:
        checkpoint = context.checkpoints.get(name)
    except DataContextError:
        checkpoint = None
    if checkpoint is not None and (checkpoint.result_format != result_format or checkpoint.actions):
        # not add_or_update: it cascades to suites.add_or_update, which rewrites suite files
        context.checkpoints.delete(name)
        checkpoint = None
    if checkpoint is None:
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=name,
                validation_definitions=[validation],
                actions=[],
                result_format=result_format,
            )
        )
    return checkpoint


def build_docs(context, gx_dir: Path, key, suite) -> None:
    """Render the Data Docs page of validation result `key` and the site's index, and the
    page of its `suite` (the GX suite object) only when the suite, custpipe's renderers or
    GX changed since that page was rendered (GX's UpdateDataDocsAction re-renders the
    suite's page on every validation: ~0.1 s each, ten times a night)."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    from custpipe.quality import expectations as custom_expectations

    stamp = gx_dir / DOCS_DIRNAME / "expectations" / f".{suite.name}.rendered"
    text = json.dumps(suite.to_json_dict(), sort_keys=True, default=str)
    renderers = Path(custom_expectations.__file__).read_bytes()
    digest = hashlib.sha1(text.encode() + renderers + gx.__version__.encode()).hexdigest()
    page = stamp.with_name(f"{suite.name}.html")
    fresh = page.exists() and stamp.exists() and stamp.read_text() == digest
    resources = [key] if fresh else [key, ExpectationSuiteIdentifier(name=suite.name)]
    context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=resources)
    if not fresh and page.exists():
        stamp.write_text(digest)


def prune_results(context, gx_dir: Path, suite_name: str, keep: int) -> None:
    """Keep only the newest ``keep`` validation results of ``suite_name`` (and their pages)."""
    store = context.validation_results_store
    keys = [k for k in store.list_keys() if k.expectation_suite_identifier.name == suite_name]
    keys.sort(key=lambda k: k.run_id.run_time)
    stale = keys[: max(0, len(keys) - keep)]
    for key in stale:
        store.remove_key(key)
        page = gx_dir / DOCS_DIRNAME / VALIDATIONS_DIRNAME / Path(*key.to_tuple())
        page = page.with_name(page.name + ".html")
        page.unlink(missing_ok=True)
        _remove_empty_parents(page.parent, stop=gx_dir)
        _remove_empty_parents(
            gx_dir / VALIDATIONS_DIRNAME / Path(*key.to_tuple()[:-1]), stop=gx_dir
        )


def _remove_empty_parents(directory: Path, stop: Path) -> None:
    stop = stop.resolve()
    directory = directory.resolve()
    while directory != stop and stop in directory.parents:
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        elif not directory.exists():
            pass
        else:
            return
        directory = directory.parent


def docs_page_for(context, key) -> Path | None:
    """Return the local Data Docs page of validation result ``key`` (or the index)."""
    from urllib.parse import unquote, urlparse

    try:
        urls = context.get_docs_sites_urls(resource_identifier=key, site_names=[SITE_NAME])
    except Exception:  # docs location is best effort
        urls = []
    for entry in urls:
        url = entry.get("site_url") or ""
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            if path.exists():
                return path
    return None
