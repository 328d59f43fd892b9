"""The `aurora` command line."""

import argparse
import os
import signal
import sys

from core.allocator import arrow_from_the_c_allocator, large_blocks_unmapped
from core.errors import AuroraError


def _demo_data(args) -> int:
    from tooling.demo_data import write_demo_data

    paths = write_demo_data(args.output, seed=args.seed)
    print(f"wrote {len(paths)} files of demo input under {args.output}")
    return 0


def _assets_build(args) -> int:
    from tooling.assets import build_assets

    record, built = build_assets(args.output, force=args.force)
    state = "built" if built else "up to date"
    for name, entry in record["files"].items():
        print(f"{args.output}/{name}  sha256 {entry['sha256'][:16]}…  ({state})")
    return 0


def _curate(args) -> int:
    from manifests.manifest import format_manifest
    from pipeline.curate import curate
    from pipeline.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    manifest = curate(recipe, inputs=args.input, output=args.output, executor=args.executor, workers=args.workers,
                      verbose=args.verbose)
    print(format_manifest(manifest))
    print(f"shards and manifest: {args.output or recipe.output}/manifest.json")
    return 0


def _refilter(args) -> int:
    from manifests.manifest import format_manifest
    from pipeline.recipe import load_recipe
    from pipeline.refilter import refilter

    recipe = load_recipe(args.recipe)
    manifest = refilter(recipe, args.run, output=args.output, executor=args.executor, workers=args.workers, verbose=args.verbose)
    print(format_manifest(manifest))
    print(f"shards and manifest: {args.output or recipe.output}/manifest.json")
    return 0


def _mix(args) -> int:
    from manifests.manifest import format_manifest
    from pipeline.mix import load_stage_recipe, mix

    recipe = load_stage_recipe(args.recipe)
    plan, manifest = mix(recipe, dry_run=args.dry_run, output=args.output, executor=args.executor, workers=args.workers,
                         verbose=args.verbose)
    print(plan)
    if manifest is not None:
        print()
        print(format_manifest(manifest))
        print(f"stage shards and manifest: {args.output or recipe.output}/manifest.json")
    return 0


def _train(args) -> int:
    try:
        from trainer.export import export_run
        from trainer.train import main as train_main
    except ImportError as e:
        raise AuroraError(f"training needs the train extra (pip install -e '.[train]'): {e}") from None
    if args.config != "export":
        if args.run is not None or args.step is not None:
            raise AuroraError("RUN and --step go with `aurora train export RUN [--step N]`")
        return train_main([args.config])
    if args.run is None:
        raise AuroraError("usage: aurora train export RUN [--step N]")
    print(f"Hugging Face model: {export_run(args.run, args.step)}")
    return 0


def _calibrate(args) -> int:
    from pipeline.recipe import TEXT_LANGUAGES
    from tooling.calibrate import calibrate, calibrate_signals

    if args.signals is not None:
        if args.files or args.language:
            raise AuroraError("--signals RUN takes no FILE and no --language (the run's language is used)")
        print(calibrate_signals(args.signals))
        return 0
    if not args.files:
        raise AuroraError("calibrate needs FILE ... with --language, or --signals RUN")
    if args.language not in TEXT_LANGUAGES:
        raise AuroraError(f"--language must be one of {', '.join(TEXT_LANGUAGES)}")
    for path in args.files:
        if not os.path.exists(path):
            raise AuroraError(f"{path}: no such file")
    from readers.html_text import DEFAULT_EXTRACTOR, EXTRACTORS

    extractor = args.extractor or DEFAULT_EXTRACTOR
    if extractor not in EXTRACTORS:
        raise AuroraError(f"--extractor must be one of {', '.join(EXTRACTORS)}")
    print(calibrate(args.files, args.language, documents=args.documents, seed=args.seed, extractor=extractor))
    return 0


def _quality_train(args) -> int:
    from pipeline.recipe import TEXT_LANGUAGES
    from tooling.quality import card_path, train_classifier

    if args.language not in TEXT_LANGUAGES:
        raise AuroraError(f"--language must be one of {', '.join(TEXT_LANGUAGES)}")
    card = train_classifier(args.language, args.positive, args.negative, args.output, args.held_out, args.seed)
    scores, documents = card["held_out"], card["documents"]
    print(f"held out ({documents['held_out_per_class']:,} documents per class; trained on {documents['trained_per_class']:,}): "
          f"precision {scores['precision']:.4f}, recall {scores['recall']:.4f}, AUC {scores['auc']:.4f}")
    print(f"model: {args.output} (label hq); card: {card_path(args.output)}")
    return 0


def _manifest_audit(args) -> int:
    from manifests.audit import audit
    from manifests.manifest import load_manifest

    failed = 0
    for path in args.paths:
        manifest, folder = load_manifest(path)
        problems = audit(manifest, folder)
        for problem in problems:
            print(f"{path}: {problem}")
        if problems:
            failed += 1
        else:
            totals = manifest["totals"]
            print(f"{path}: OK ({len(manifest['shards'])} shards, {totals['documents']:,} documents, {totals['tokens']:,} tokens)")
    return 1 if failed else 0


def _manifest_show(args) -> int:
    from manifests.manifest import format_manifest, load_manifest

    print(format_manifest(load_manifest(args.path)[0]))
    return 0


def _manifest_report(args) -> int:
    from manifests.report import write_report

    path = write_report(args.paths, args.output)
    print(f"report: {path}, {os.path.join(os.path.dirname(path), 'report.html')}")
    return 0


def _run_options(command, workers_help: str) -> None:
    """--output, --executor and --workers, shared by the commands that run datatrove tasks."""
    command.add_argument("--output", help="output folder (local or s3://), replacing the recipe's")
    command.add_argument("--executor", choices=["local", "ray"], default="local")
    command.add_argument("--workers", type=int, default=1, help=workers_help)
    command.add_argument("--verbose", action="store_true", help="datatrove's task logs on the console too (always in logs/)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aurora", description="Curate multilingual web and code data into audited Megatron shards.")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="write seeded, labelled web-like demo input")
    demo.add_argument("--output", default="data/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo_data)

    assets = sub.add_parser("assets", help="offline models: language ID, tokenizer")
    assets_sub = assets.add_subparsers(dest="assets_command", required=True)
    build = assets_sub.add_parser("build", help="train the assets from the project's sample text")
    build.add_argument("--output", default="assets")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.set_defaults(func=_assets_build)

    curate = sub.add_parser("curate", help="run a curation recipe: read, filter, tokenize, write shards and manifest")
    curate.add_argument("recipe")
    curate.add_argument("--input", nargs="+", action="extend", metavar="GLOB",
                        help="input files (local or s3://), replacing the recipe's sources; may be repeated")
    _run_options(curate, workers_help="tasks run at once")
    curate.set_defaults(func=_curate)

    refilter = sub.add_parser("refilter", help="apply a recipe with changed thresholds to a curate run's signals: "
                                               "the shards, rejects and manifest of a full run, without computing a metric again")
    refilter.add_argument("recipe")
    refilter.add_argument("--from", dest="run", required=True, metavar="RUN", help="the curate run (its folder or manifest.json)")
    _run_options(refilter, workers_help="tasks run at once")
    refilter.set_defaults(func=_refilter)

    mix = sub.add_parser("mix", help="build a training stage (CAP, CAT) from pools to exact token budgets")
    mix.add_argument("recipe")
    mix.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    _run_options(mix, workers_help="parts written at once")
    mix.set_defaults(func=_mix)

    train = sub.add_parser("train", help="train on a stage (CAP, CAT) in one process (torchrun -m trainer for many); "
                                         "`train export RUN [--step N]` writes a checkpoint's model in Hugging Face format")
    train.add_argument("config", help="the training config, or `export`")
    train.add_argument("run", nargs="?", help="with export: the run's output folder")
    train.add_argument("--step", type=int, help="with export: the checkpoint's step (default: the latest)")
    train.set_defaults(func=_train)

    cal = sub.add_parser("calibrate", help="heuristic metrics on clean text, and suggested thresholds as YAML")
    cal.add_argument("--language")
    cal.add_argument("files", nargs="*", metavar="FILE",
                     help="text (one sentence a line), documents (jsonl[.gz/.zst], parquet, warc[.gz], wet[.gz]) or HTML pages (.html)")
    cal.add_argument("--signals", metavar="RUN", help="instead of FILEs: the signals of a curate run, its kept documents as clean text")
    cal.add_argument("--documents", type=int, default=2000, help="documents to assemble from sentence files")
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--extractor", help="how HTML pages (warc, .html) become text: the recipe's read.extractor "
                     "(default resiliparse+trafilatura)")
    cal.set_defaults(func=_calibrate)

    quality = sub.add_parser("quality", help="document quality classifiers")
    quality_sub = quality.add_subparsers(dest="quality_command", required=True)
    train_quality = quality_sub.add_parser("train", help="a fastText quality classifier, DCLM's way; held-out precision, recall, AUC")
    train_quality.add_argument("--language", required=True)
    train_quality.add_argument("--positive", nargs="+", required=True, metavar="FILE",
                               help="documents of the quality to keep (jsonl[.gz/.zst], parquet, warc[.gz]; globs)")
    train_quality.add_argument("--negative", nargs="+", required=True, metavar="FILE", help="documents to tell them from")
    train_quality.add_argument("--output", required=True, metavar="MODEL",
                               help="the model file: .bin (full) or .ftz (quantized); its card goes beside it")
    train_quality.add_argument("--held-out", type=float, default=0.1, help="share of each class held out to measure the model")
    train_quality.add_argument("--seed", type=int, default=0)
    train_quality.set_defaults(func=_quality_train)

    manifest = sub.add_parser("manifest", help="inspect and audit manifests")
    manifest_sub = manifest.add_subparsers(dest="manifest_command", required=True)
    audit = manifest_sub.add_parser("audit", help="recompute every count and checksum; non-zero exit on any difference")
    audit.add_argument("paths", nargs="+", metavar="PATH")
    audit.set_defaults(func=_manifest_audit)
    show = manifest_sub.add_parser("show", help="print a manifest as a table")
    show.add_argument("path")
    show.set_defaults(func=_manifest_show)
    report = manifest_sub.add_parser("report", help="report.md with PNG charts, and report.html to browse, of pools and stages")
    report.add_argument("paths", nargs="+", metavar="PATH", help="manifests or their folders")
    report.add_argument("--output", required=True, help="folder for report.md, report.html and the charts")
    report.set_defaults(func=_manifest_report)
    return p


def _storage_errors() -> tuple:
    """Errors of the environment rather than of aurora: a full disk, a permission, an unreachable endpoint."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except AuroraError as e:
        print(f"aurora: error: {_bounded(str(e))}", file=sys.stderr)
        return 2
    except _storage_errors() as e:
        print(f"aurora: error: {_bounded(f'{type(e).__name__}: ' + ' '.join(str(e).split()))}", file=sys.stderr)
        return 2


MAX_ERROR_CHARS = 1000  # a message quotes what the user gave (a value, a line): that may be anything


def _bounded(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else f"{message[:MAX_ERROR_CHARS]}... ({len(message):,} characters)"


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def run() -> None:
    """The `aurora` command: `main`, then an immediate exit with its status. Native libraries'
    threads (pyarrow's) may still be releasing memory at interpreter shutdown, and their static
    destructors then abort the process (exit 134) after the work succeeded; everything aurora
    writes is closed and renamed by now, so skipping that teardown loses nothing."""
    signal.signal(signal.SIGTERM, _interrupted)  # as Ctrl-C: one line, and the run resumes later
    # After an interrupt, the resource tracker (a helper process) reports the pool's semaphores it
    # cleans up; the cleanup is its job, the report is noise after our one line.
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                          "ignore:resource_tracker:UserWarning"]))
    arrow_from_the_c_allocator()  # before any command loads Arrow: its own mimalloc keeps what tasks free
    large_blocks_unmapped()  # a one-worker run's tasks run in this process
    try:
        code = main()
    except KeyboardInterrupt:
        print("aurora: error: interrupted; the same command resumes the run", file=sys.stderr)
        code = 130
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
