"""``reelwatch eval DIR``: build a labelled set from reference media, match it, print metrics."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from reelwatch.cli import console, err_console, settings_of
from reelwatch.cli.ops import progress_bar
from reelwatch.errors import InputError


def evaluate(
    ctx: typer.Context,
    directory: Annotated[
        Path,
        typer.Argument(
            help="Reference media: one sub-folder per title (optional titles.yaml). "
            "Empty or missing: the built-in titles are written there first."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    signal: Annotated[
        list[str] | None,
        typer.Option(help="Run only this signal (repeatable; default: the configured ones)."),
    ] = None,
    distractors: Annotated[
        int, typer.Option(help="Unrelated source clips (each makes 2 distractor posts).")
    ] = 8,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Rebuild the queries and the catalog from scratch.")
    ] = False,
) -> None:
    """Evaluate matching on a labelled set made from reference media.

    Copies of each reference under the transformations re-uploaders use (crops down to 60%,
    mirror, ±5° rotations, 9:16 letterboxes, overlays, picture-in-picture, speed changes with
    their pitch, frame-rate changes, heavy re-encoding, an AVI whose audio track is broken),
    its soundtrack under other pictures with a voice-over below, as loud as and 4 dB over
    the music, group photos of a talent, and distractors. Built-in titles add re-created
    theme melodies, other cues of the same soundtracks (distractors) and title names burned
    into unrelated footage. Prints micro-average precision (VSC 2022) per signal and fused,
    recall at the high tier, false high-confidence matches, recall per family and segment
    timing errors.
    """
    from matcher.evaluation import EvalQuery, EvalReference, EvalSet, format_result, run_eval
    from reelwatch.demo.evalset import build_queries, find_references, write_builtin_references

    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    base = settings_of(ctx)
    out = err_console if as_json else console  # keep stdout pure JSON
    work = directory / ".eval"
    if fresh and work.exists():
        shutil.rmtree(work)
    if not directory.exists() or not any(
        p for p in directory.iterdir() if not p.name.startswith(".")
    ):
        out.print(f"{directory}: no references, writing the built-in titles there")
        write_builtin_references(directory)
    titles, refs = find_references(directory)
    if not refs:
        raise InputError(f"{directory}: no reference media (one sub-folder per title)")

    with progress_bar(out) as bar:
        task = bar.add_task("building queries", total=None)
        built = build_queries(
            directory,
            refs,
            titles,
            lambda msg: bar.update(task, advance=1),
            distractors=distractors,
        )
        bar.update(task, total=len(built), completed=len(built))

    # A home of its own, so the user's catalog is never touched; fingerprints are reused.
    home = work / "home"
    shutil.rmtree(home / "catalog", ignore_errors=True)
    overrides: dict[str, object] = {"home": home}
    settings = base.model_copy(update=overrides)
    if signal:
        settings.matcher = settings.matcher.model_copy(update={"signals": list(signal)})
    evalset = EvalSet(
        titles=titles,
        references=[EvalReference(r.title, r.path, r.kind, r.talent) for r in refs],
        queries=[EvalQuery(**{**asdict(q)}) for q in built],
    )
    with progress_bar(out) as bar:
        task = bar.add_task("matching", total=len(evalset.queries))
        result, _ = run_eval(settings, evalset, lambda q: bar.update(task, advance=1))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    for line in format_result(result):
        console.print(line)
