"""``reelwatch es setup``: install the Elasticsearch templates, ILM policy and aliases
(:mod:`triage.stores.es_setup`), under the store's retry policy.

The compose stack's setup job runs it before the workers start; running it again is harmless
(it prints what it changed, usually nothing), so it is also how an upgrade applies new
mappings.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from reelwatch.cli import console, settings_of

es_app = typer.Typer(
    help="Elasticsearch: index templates, ILM policy, aliases.", no_args_is_help=True
)


@es_app.command("setup")
def setup(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="Cluster URL (default: store.elasticsearch_url from the settings)."),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Name prefix of indices, aliases and templates (default: reelwatch)."),
    ] = None,
) -> None:
    """Create or update what the elasticsearch store needs; a second run changes nothing."""
    from reelwatch.redact import redact_url
    from triage.stores.base import StoreError
    from triage.stores.elasticsearch import INDEX_PREFIX, ElasticsearchStore

    if logging.getLogger().level > logging.INFO:
        # The transport logs every failed request with a traceback; our one line says it.
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    settings = settings_of(ctx)
    target = url or settings.store.elasticsearch_url
    if not target:
        raise StoreError(
            "no Elasticsearch URL: pass --url or set REELWATCH_STORE__ELASTICSEARCH_URL"
        )
    chosen = prefix or settings.store.elasticsearch_index_prefix or INDEX_PREFIX
    # The store opens without setting up, then runs triage.stores.es_setup under its one
    # retry policy (busy or absent cluster: bounded backoff, then one line).
    with ElasticsearchStore(target, prefix=str(chosen), auto_setup=False) as store:
        changes = store.setup()
    for change in changes:
        console.print(change)
    if not changes:
        where = redact_url(target)
        console.print(f"nothing to change: Elasticsearch at {where} is set up ({chosen}-*)")
