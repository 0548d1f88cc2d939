"""``sinfree eval``: the paper's Table 1 metrics (and layout, seams) for sinfree or another generator's samples."""

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import EXPERT, LAYOUT, OUTPUT_PANEL, SAMPLER, check_device, with_options


@with_options(SAMPLER, LAYOUT, EXPERT)
def evaluate(
    inputs: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Input images or folders of them (default: $SINFREE_BENCHMARK_DIR, the paper's 15 images)."),
    ] = None,
    samples_dir: Annotated[
        Optional[Path],
        typer.Option("--samples-dir", help="Evaluate existing samples instead: DIR/<input stem>/*.png (any generator's)."),
    ] = None,
    label: Annotated[
        Optional[str], typer.Option("--label", help="Name of this run in the report (default from the settings).")
    ] = None,
    compare: Annotated[
        Optional[list[Path]], typer.Option("--compare", help="Earlier results.json (or their folders) to show beside this run.")
    ] = None,
    outdir: Annotated[
        Path,
        typer.Option(
            "-o", "--outdir", rich_help_panel=OUTPUT_PANEL, help="Folder for results.json/.csv, report.md, figures/ and samples/."
        ),
    ] = Path("eval"),
    num_samples: Annotated[
        int, typer.Option("-n", "--num-samples", min=2, rich_help_panel=OUTPUT_PANEL, help="Samples generated per input.")
    ] = 10,
    seed: Annotated[
        int, typer.Option("--seed", rich_help_panel=OUTPUT_PANEL, help="Seed of the first sample; sample i uses seed + i.")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", rich_help_panel=OUTPUT_PANEL, help="Write into an OUTDIR that holds a report.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUT_PANEL, help="No progress bar.")] = False,
    *,
    options,
) -> None:
    """Evaluate sinfree (or another generator's samples) with the paper's Table 1 metrics, and write a report."""
    from ..errors import SinfreeError
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import image_files, load_run, write_report
    from ..evaluation.evaluate import check_eval_extra, default_benchmark_dir
    from .running import check_output_folder, check_outputs, progress_bar, settings_from, stderr

    check_device(options.device)  # a missing GPU: one line, before any work (also when only scoring samples)
    check_eval_extra()
    if not inputs:
        benchmark = default_benchmark_dir()
        if benchmark is None:
            raise SinfreeError("no inputs given: name images or folders (or set SINFREE_BENCHMARK_DIR to the paper's 15 images)")
        inputs = [benchmark]
    files = image_files(inputs)
    compared = [load_run(path) for path in compare or []]  # bad files fail before any work
    settings = None if samples_dir is not None else settings_from(options)
    outdir = check_output_folder(outdir)
    check_outputs([outdir / "results.json"], files, overwrite)
    outdir.mkdir(parents=True, exist_ok=True)
    stderr.print(
        f"evaluating {len(files)} image(s): " + (f"samples in {samples_dir}" if samples_dir else f"{num_samples} samples each")
    )
    with progress_bar(quiet) as bar:
        task = bar.add_task("evaluating", total=len(files))
        run = run_evaluation(
            files,
            settings=settings,
            num_samples=num_samples,
            seed=seed,
            samples_dir=samples_dir,
            save_samples_to=None if samples_dir else outdir / "samples",
            label=label,
            on_image=lambda index, name, stage: bar.update(task, completed=index, description=f"{name}: {stage}"),
        )
        bar.update(task, completed=len(files), description="done")
    report = write_report(run, outdir, compared, command="sinfree " + " ".join(sys.argv[1:]))
    mean = run.mean()
    typer.echo(
        f"mean over {len(files)} image(s): SIFID {mean['sifid']:.4g}, LPIPS diversity {mean['lpips_diversity']:.4g}, "
        f"pixel diversity {mean['pixel_diversity']:.4g}, NIQE {mean['niqe']:.4g}, copying rate {mean['copying_rate']:.3g}"
    )
    typer.echo(str(report))
