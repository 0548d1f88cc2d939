"""``sinfree batch``: every image of a folder x seeds x subcommands, each job a ``sinfree`` run of its own, in
this process's machine one after another or on Dask workers (``--workers``, ``--scheduler``); a JSON manifest
of the jobs (done, failed, their outputs and seconds) is rewritten after each one, and a job the manifest lists
as done, with its outputs still there, is skipped."""

import json
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SinfreeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
BATCH_COMMANDS = ("generate", "retarget", "symmetric", "tile")
MANIFEST = "manifest.json"


def parse_seeds(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; '0,5,7' -> [0, 5, 7]."""
    seeds = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                low, high = (
                    part.split("-", 1)
                    if not part.startswith("-")
                    else ("-" + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1])
                )
                seeds += list(range(int(low), int(high) + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise SinfreeError(f"--seeds must be like 0-3 or 0,5,7, got {text!r}") from None
    if not seeds:
        raise SinfreeError("--seeds names no seed")
    return seeds


def job_key(job: dict) -> str:
    return f"{job['command']}|{job['input']}|{job['seed']}|{job['args']}"


class BatchJob:
    """One ``sinfree`` run in a subprocess (picklable: Dask workers run it); returns its manifest entry."""

    def __call__(self, job: dict) -> dict:
        import subprocess
        import sys
        import time

        command = [
            sys.executable,
            "-m",
            "sinfree.cli",
            job["command"],
            job["input"],
            "-o",
            job["outdir"],
            "--seed",
            str(job["seed"]),
        ]
        command += ["-n", "1", "-q", *shlex.split(job["args"])]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        outputs = [line.strip() for line in done.stdout.splitlines() if Path(line.strip()).suffix in (".png", ".tif", ".jpg")]
        entry = job | {"seconds": round(time.perf_counter() - started, 2), "outputs": outputs}
        if done.returncode == 0:
            return entry | {"status": "done"}
        lines = done.stderr.strip().splitlines()
        return entry | {"status": "failed", "error": lines[-1] if lines else f"exit status {done.returncode}"}


def batch(
    folder: Annotated[
        Path, typer.Argument(help="Folder of input images (PNG, JPEG, TIFF, BMP, WebP); not searched recursively.")
    ],
    outdir: Annotated[
        Path, typer.Option("-o", "--outdir", help="Folder of the outputs (one subfolder per subcommand) and the manifest.")
    ] = Path("batch"),
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds of every input: 0-3 or 0,5,7.")] = "0",
    commands: Annotated[
        Optional[list[str]],
        typer.Option(
            "--command",
            "-c",
            help=f"Subcommand to run on every input, repeatable: {', '.join(BATCH_COMMANDS)} (default generate).",
        ),
    ] = None,
    args: Annotated[
        str, typer.Option("--args", help="Options given to every job, one string: e.g. '--size 512x512 --latent pca'.")
    ] = "",
    workers: Annotated[
        Optional[int], typer.Option("--workers", min=1, help="Run the jobs on an embedded Dask cluster of N workers.")
    ] = None,
    scheduler: Annotated[
        Optional[str], typer.Option("--scheduler", help="Run the jobs on an existing Dask cluster (tcp://HOST:PORT).")
    ] = None,
    redo: Annotated[
        bool, typer.Option("--redo", help="Run jobs the manifest lists as done again (their outputs replaced).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-job lines.")] = False,
) -> None:
    """Run subcommands over every image of FOLDER x seeds, writing a manifest (manifest.json in -o) and skipping done jobs."""
    from ..large.cluster import make_executor
    from ..large.store import write_json_atomically

    commands = commands or ["generate"]
    unknown = [c for c in commands if c not in BATCH_COMMANDS]
    if unknown:
        raise SinfreeError(f"--command {unknown[0]!r} is not one of {', '.join(BATCH_COMMANDS)}")
    if not folder.is_dir():
        raise SinfreeError(f"{folder}: not a folder of images")
    if workers is not None and scheduler is not None:
        raise SinfreeError("--workers starts a local cluster and --scheduler uses an existing one: give one of them")
    try:
        shlex.split(args)
    except ValueError as error:
        raise SinfreeError(f"--args cannot be split into options: {error}") from None
    inputs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not inputs:
        raise SinfreeError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    seed_list = parse_seeds(seeds)
    outdir.mkdir(parents=True, exist_ok=True)
    manifest_path = outdir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"jobs": []}
    entries = {job_key(entry): entry for entry in manifest["jobs"]}
    jobs, skipped = [], 0
    for command in commands:
        for path in inputs:
            for seed in seed_list:
                job = {"command": command, "input": str(path), "seed": seed, "args": args, "outdir": str(outdir / command)}
                earlier = entries.get(job_key(job))
                if earlier and earlier.get("status") == "done" and all(Path(p).exists() for p in earlier["outputs"]) and not redo:
                    skipped += 1
                    continue
                jobs.append(job | ({"args": args + " --overwrite"} if redo else {}))
    typer.echo(f"{len(jobs)} job(s) to run, {skipped} already done ({manifest_path})")
    failed = 0

    def done(job, entry):
        nonlocal failed
        entry = entry | {"args": args}
        entries[job_key(entry)] = entry
        write_json_atomically(manifest_path, {"jobs": sorted(entries.values(), key=job_key)})
        failed += entry["status"] != "done"
        if not quiet:
            name = Path(entry["input"]).name
            what = ", ".join(entry["outputs"]) if entry["status"] == "done" else entry["error"]
            typer.echo(f"{entry['status']}: {entry['command']} {name} seed {entry['seed']} ({entry['seconds']:.1f} s): {what}")

    if jobs:
        executor = make_executor(workers, scheduler)
        try:
            executor.map(BatchJob(), jobs, done)
        finally:
            executor.close()
    if failed:
        raise SinfreeError(f"{failed} of {len(jobs)} job(s) failed; see {manifest_path}")
