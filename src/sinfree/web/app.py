"""``sinfree web``: a local Gradio app with a tab per application. Every tab runs the ``sinfree`` command it
shows (``sinfree.web.handlers``); this module only lays out the controls and the results.

Nothing is fetched from outside the machine: analytics off, a theme with system fonts, no CDN.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import SinfreeError
from . import handlers
from .handlers import WebConfig

logger = logging.getLogger("sinfree")
PRESETS = ["default", "paper"]
HEADER = (
    "# sinfree\nGenerate, edit and enhance images from **one** image, with no training. Each tab runs the "
    "`sinfree` command shown under its results; outputs carry the run's settings in their metadata."
)
CSS = ".sinfree-command textarea, .sinfree-command pre { font-size: 0.85em; }"


def gradio():
    """gradio, with its analytics off before it is imported (no request leaves the machine)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from ..extras import require

    return require("gradio", "web", "sinfree web")


def local_theme(gr):
    """A theme with the system's fonts only (no web fonts)."""
    return gr.themes.Base(
        primary_hue="orange",
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "Consolas", "monospace"],
    )


# --------------------------------------------------------------------------------------------------- events


def user_errors(gr, fn: Callable) -> Callable:
    """``fn`` with the library's one-line errors shown as messages (gr.Error); anything else is logged and shown
    as an unexpected error, and the app keeps working."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SinfreeError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as error:
            logger.exception("web job failed")
            raise gr.Error(f"unexpected error: {type(error).__name__}: {error}", print_exception=False) from None

    return wrapped


def clean(value: Any) -> Any:
    """A control's value as the command takes it: blank text is not given, whole floats are ints."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def job_function(gr, names: list[str], body: Callable[[dict[str, Any], Any], Any]) -> Callable:
    """A gradio event function of the controls ``names`` (in this order; the API shows these names) and a progress
    bar, calling ``body({name: cleaned value}, progress)``, with the library's errors as messages."""
    import inspect

    def fn(*args):
        progress = args[len(names)] if len(args) > len(names) else gr.Progress()
        return body({name: clean(value) for name, value in zip(names, args)}, progress)

    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
    progress = inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())
    fn.__signature__ = inspect.Signature(parameters + [progress])
    return user_errors(gr, fn)


def queued(config: WebConfig) -> dict[str, Any]:
    """The run events' share of one queue: ``config.concurrency`` runs at a time over all the tabs together."""
    return {"concurrency_limit": config.concurrency, "concurrency_id": "sinfree-runs"}


def reporter(progress) -> Callable[[Optional[float], str], None]:
    """The command's progress updates as a gr.Progress bar."""

    def report(fraction: Optional[float], description: str) -> None:
        progress(fraction, desc=description)

    return report


def live_command(gr, name: str, controls: dict[str, Any], command, fixed: Optional[dict] = None) -> None:
    """Keep ``command`` showing the ``sinfree`` line of the current settings."""

    names = list(controls)

    def show(*values):
        try:
            return handlers.command_line(name, {key: clean(value) for key, value in zip(names, values)} | (fixed or {}))
        except Exception:  # a half-typed value: keep the last line
            return gr.skip()

    triggers = [component.change for component in controls.values() if hasattr(component, "change")]
    gr.on(
        triggers,
        show,
        inputs=list(controls.values()),
        outputs=command,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )


# --------------------------------------------------------------------------------------------------- pieces


def image_upload(gr, config: WebConfig, label: str = "Image", preview=None, elem_id: Optional[str] = None):
    """A file upload (any image the CLI reads) and its preview; a bad file is a message at once."""
    upload = gr.File(label=label, file_count="single", type="filepath", height=90, elem_id=elem_id)
    if preview is None:
        preview_id = None if elem_id is None else f"{elem_id}-preview"
        preview = gr.Image(
            label=f"{label} (preview)", interactive=False, height=220, format="png", buttons=[], elem_id=preview_id
        )

    @functools.partial(user_errors, gr)
    def show(path):
        return None if not path else handlers.display_image(handlers.read_upload(path, config))

    upload.change(show, upload, preview, concurrency_limit=None, show_progress="minimal", api_visibility="undocumented")
    return upload


def seed_and_count(gr, name: str, maximum: int = 8) -> dict[str, Any]:
    controls = {}
    with gr.Row():
        controls["num_samples"] = gr.Slider(1, maximum, value=1, step=1, label="Outputs (-n)", elem_id=f"{name}-count")
        controls["seed"] = gr.Number(value=0, precision=0, label="Seed (output i uses seed + i)")
    return controls


def sampler_settings(gr, name: str, scales: bool = True) -> dict[str, Any]:
    """The sampler's options: blank means the preset's value, as on the command line."""
    controls = {}
    with gr.Accordion("Sampler", open=False, elem_id=f"{name}-sampler"):
        with gr.Row():
            controls["preset"] = gr.Dropdown(PRESETS, value="default", label="Preset")
            controls["steps"] = gr.Textbox(label="Steps -T", placeholder="the preset's: 10", elem_id=f"{name}-steps")
            controls["patch_size"] = gr.Textbox(label="Patch size -P", placeholder="15 px (smaller inputs: less)")
            if scales:
                controls["scales"] = gr.Textbox(label="Scales -S", placeholder="the preset's (or auto)")
    return controls


def results(gr, name: str, previews: bool = False):
    """The gallery, the downloads and the command line of a generating tab."""
    gallery = gr.Gallery(
        label="Results", columns=3, height="auto", format="png", object_fit="contain", preview=False, elem_id=f"{name}-gallery"
    )
    preview = gr.Gallery(label="2 x 2 preview (seams?)", columns=2, height=360, format="png") if previews else None
    files = gr.File(label="Downloads (PNG with the run's settings in its metadata)", file_count="multiple", interactive=False)
    command = gr.Code(
        label="The same run on the command line",
        language="shell",
        interactive=False,
        elem_classes="sinfree-command",
        elem_id=f"{name}-command",
    )
    return gallery, preview, files, command


def summary(result: handlers.JobResult) -> str:
    return f"{result.command}\n# {len(result.files)} file(s) in {result.seconds:.1f} s"


# --------------------------------------------------------------------------------------------------- tabs


def generation_tab(gr, config: WebConfig, name: str, title: str, intro: str, build: Callable[[], dict[str, Any]]):
    """A tab of a generating command: its own controls (``build``), seed and count, the sampler, a run button,
    the results; the run is ``handlers.generation_job``."""
    with gr.Tab(title, id=name):
        gr.Markdown(intro)
        with gr.Row():
            with gr.Column(scale=2):
                controls = build()
                button = gr.Button("Run", variant="primary", elem_id=f"{name}-run")
            with gr.Column(scale=3):
                gallery, preview, files, command = results(gr, name, previews=name == "tile")
    outputs = [gallery, files, command] + ([preview] if preview is not None else [])

    def run(values, progress):
        result = handlers.generation_job(config, name, values, reporter(progress))
        shown = [[str(path) for path in result.extra["samples"]], [str(path) for path in result.files], summary(result)]
        return shown + ([[str(path) for path in result.extra["previews"]]] if preview is not None else [])

    button.click(
        job_function(gr, list(controls), run), inputs=list(controls.values()), outputs=outputs, api_name=name, **queued(config)
    )
    live_command(gr, name, controls, command)
    return controls


def generate_controls(gr, config: WebConfig, name: str) -> Callable[[], dict[str, Any]]:
    """The controls of generate, retarget, symmetric and tile."""

    def build():
        controls = {"input": image_upload(gr, config, elem_id=f"{name}-input")}
        if name == "retarget":
            controls["size"] = gr.Textbox(label="Output size WIDTHxHEIGHT (required)", placeholder="e.g. 400x186")
        else:
            controls["size"] = gr.Textbox(label="Output size WIDTHxHEIGHT (blank: the input's)", placeholder="e.g. 512x384")
        if name == "symmetric":
            controls["axis"] = gr.Radio(["vertical", "horizontal", "both"], value="vertical", label="Mirror axis")
        if name == "tile":
            controls["preview"] = gr.Checkbox(value=True, label="Also write each tile repeated 2 x 2 (--preview)")
        controls |= seed_and_count(gr, name)
        controls |= sampler_settings(gr, name)
        if name in ("generate", "symmetric"):
            with gr.Accordion("Layout", open=False):
                controls["layout_guidance"] = gr.Textbox(label="Layout guidance in [0, 1]", placeholder="the preset's: 0.7")
                controls["layout_guidance_end"] = gr.Textbox(
                    label="Layout guidance at the last step in [0, 1]", placeholder="blank: constant"
                )
                controls["position_prior"] = gr.Textbox(label="Position prior (e.g. 0.1)", placeholder="blank: off")
                controls["variation"] = gr.Textbox(label="Variation in (0, 1]", placeholder="1: pure noise")
        return controls

    return build


def analogy_controls(gr, config: WebConfig) -> Callable[[], dict[str, Any]]:
    def build():
        controls = {"structure": image_upload(gr, config, "Structure (the layout)", elem_id="analogy-input")}
        controls["style"] = image_upload(gr, config, "Style (the patches)", elem_id="analogy-style")
        controls["level"] = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Level: lower keeps more of the layout")
        controls |= seed_and_count(gr, "analogy")
        controls |= sampler_settings(gr, "analogy", scales=False)
        return controls

    return build


def style_controls(gr, config: WebConfig) -> Callable[[], dict[str, Any]]:
    def build():
        controls = {"input": image_upload(gr, config, elem_id="style-input")}
        controls["prompt"] = gr.Textbox(value="a watercolour painting", label="Style, in words")
        with gr.Row():
            controls["level"] = gr.Slider(0.05, 1.0, value=0.3, step=0.05, label="Level")
            controls["gamma"] = gr.Number(value=1.0, label="Guidance strength")
            controls["views"] = gr.Number(value=16, precision=0, label="Views per gradient")
        with gr.Row():
            controls["steps"] = gr.Number(value=200, precision=0, label="Steps -T")
            controls["patch_size"] = gr.Number(value=7, precision=0, label="Patch size -P")
        controls |= seed_and_count(gr, "style", maximum=4)
        return controls

    return build


def style_available(config: WebConfig) -> Optional[str]:
    """None where CLIP can be loaded without a download, else what to do (one paragraph)."""
    if importlib.util.find_spec("transformers") is None:
        return "The style tab needs the `style` extra: `pip install 'sinfree[style]'`, then restart `sinfree web`."
    if config.clip is not None:
        return None if Path(config.clip).is_dir() else f"`--clip {config.clip}` is not a folder."
    from ..editing.style import DEFAULT_CLIP, hf_cache_dir

    cached = Path(hf_cache_dir()) / f"models--{DEFAULT_CLIP.replace('/', '--')}" / "snapshots"
    if cached.is_dir() and any(cached.iterdir()):
        return None
    return (
        "Style transfer is guided by CLIP ViT-B/32, whose weights are not on this machine. Download them once, on a "
        f"machine with internet access: `hf download {DEFAULT_CLIP} --local-dir DIR`, then start the app with "
        "`sinfree web --clip DIR` (or download into the Hugging Face cache: `hf download " + DEFAULT_CLIP + "`)."
    )


def masked_tab(gr, config: WebConfig, name: str, title: str, intro: str):
    """inpaint / harmonize: the image, a brush to paint the region on it (or a mask file), the settings."""
    with gr.Tab(title, id=name):
        gr.Markdown(intro)
        with gr.Row():
            with gr.Column(scale=3):
                editor = gr.ImageEditor(
                    label="Paint the region (brush); the eraser takes paint off",
                    type="numpy",
                    image_mode="RGBA",
                    sources=[],
                    transforms=[],
                    layers=False,
                    brush=gr.Brush(default_size=16, colors=["#ff00ff"], color_mode="fixed"),
                    format="png",
                    height=420,
                    elem_id=f"{name}-editor",
                )
                controls = {"input": image_upload(gr, config, preview=editor, elem_id=f"{name}-input")}
                mask_upload = gr.File(
                    label="Or a mask file (white: the region)",
                    file_count="single",
                    type="filepath",
                    height=90,
                    elem_id=f"{name}-mask",
                )
                controls["dilate"] = gr.Slider(0, 32, value=0, step=1, label="Grow the region by (px)")
                if name == "inpaint":
                    controls["tone_guidance"] = gr.Slider(
                        0, 1, value=0.5, step=0.05, label="Tone guidance (1: the surroundings' tones)"
                    )
                    controls["blend"] = gr.Checkbox(value=True, label="Blend the fill into its surroundings (Poisson)")
                else:
                    controls["level"] = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Level: higher changes the region more")
                controls |= seed_and_count(gr, name, maximum=4)
                controls |= sampler_settings(gr, name)
                button = gr.Button("Run", variant="primary", elem_id=f"{name}-run")
            with gr.Column(scale=3):
                gallery, _, files, command = results(gr, name)

    def run(values, progress):
        editor_value, mask_file = values.pop("editor"), values.pop("mask_file")
        result = handlers.masked_job(config, name, values, editor_value, mask_file, reporter(progress))
        return [str(path) for path in result.extra["samples"]], [str(path) for path in result.files], summary(result)

    inputs = controls | {"editor": editor, "mask_file": mask_upload}
    button.click(
        job_function(gr, list(inputs), run),
        inputs=list(inputs.values()),
        outputs=[gallery, files, command],
        api_name=name,
        **queued(config),
    )
    live_command(gr, name, controls, command, fixed={"mask": Path("mask.png")})


ENHANCE_TASKS = ["denoise", "deblur", "superres", "inpaint", "illumination"]


def enhance_tab(gr, config: WebConfig):
    """Restore a photo or a scan: before/after, the slice slider for volumes, the uncertainty, the downloads."""
    with gr.Tab("Enhance", id="enhance"):
        gr.Markdown(
            "Denoise, deblur, super-resolve, inpaint or relight a photo or a scan (PNG, TIFF, DICOM, NIfTI). The result "
            "is written in the input's format with its metadata; with more than one sample, also the per-pixel "
            "standard deviation (where the result is uncertain)."
        )
        with gr.Row():
            with gr.Column(scale=2):
                controls = {
                    "input": gr.File(
                        label="Scan or image", file_count="single", type="filepath", height=90, elem_id="enhance-input"
                    )
                }
                info = gr.Markdown("")
                with gr.Row():
                    controls["task"] = gr.Dropdown(ENHANCE_TASKS, value="denoise", label="Task")
                    controls["noise"] = gr.Dropdown(["gaussian", "poisson", "rician", "speckle"], value="gaussian", label="Noise")
                with gr.Row():
                    controls["sigma"] = gr.Textbox(value="auto", label="Noise std (data units) or auto")
                    controls["blur"] = gr.Textbox(value="auto", label="Blur width (deblur) or auto")
                    controls["scale"] = gr.Number(value=2, precision=0, label="Scale (superres)")
                controls["mask"] = gr.File(
                    label="Mask (inpaint: nonzero where pixels are missing)", file_count="single", type="filepath", height=90
                )
                with gr.Accordion("Method", open=False):
                    with gr.Row():
                        controls["method"] = gr.Dropdown(["two-stage", "one-stage"], value="two-stage", label="Method")
                        controls["steps"] = gr.Textbox(label="Steps -T", placeholder="the task's")
                        controls["patch_size"] = gr.Textbox(label="Patch size -P", placeholder="7 (two-stage denoising: 5 or 7)")
                controls |= seed_and_count(gr, "enhance", maximum=8)
                button = gr.Button("Run", variant="primary", elem_id="enhance-run")
            with gr.Column(scale=3):
                compare = gr.ImageSlider(label="Before / after", format="png", max_height=480, elem_id="enhance-compare")
                slice_index = gr.Slider(0, 1, value=0, step=1, label="Slice", visible=False)
                uncertainty = gr.Image(
                    label="Uncertainty (per-pixel std; white: least certain; needs -n > 1)", format="png", height=260
                )
                files = gr.File(label="Downloads (in the input's format)", file_count="multiple", interactive=False)
                command = gr.Code(
                    label="The same run on the command line",
                    language="shell",
                    interactive=False,
                    elem_classes="sinfree-command",
                    elem_id="enhance-command",
                )
        state = gr.State(None)

    @functools.partial(user_errors, gr)
    def describe(path):
        if not path:
            return ""
        from ..io.scans import describe_scan

        scan = handlers.read_scan_upload(path, config)
        return f"**{Path(path).name}**: {describe_scan(scan)}"

    def run(values, progress):
        result = handlers.enhance_job(config, values, reporter(progress))
        paths = (Path(values["input"]), result.extra["result"], result.extra["uncertainty"])
        slices = result.extra["slices"]
        middle = slices // 2
        return (
            handlers.before_after(paths[0], paths[1], middle),
            handlers.uncertainty_view(paths[2], middle),
            gr.Slider(0, max(slices - 1, 1), value=middle, step=1, visible=slices > 1),
            [str(path) for path in result.files],
            summary(result),
            paths,
        )

    def move(paths, index):
        if not paths:
            return gr.skip(), gr.skip()
        return handlers.before_after(paths[0], paths[1], int(index)), handlers.uncertainty_view(paths[2], int(index))

    controls["input"].change(
        describe, controls["input"], info, concurrency_limit=None, show_progress="minimal", api_visibility="undocumented"
    )
    outputs = [compare, uncertainty, slice_index, files, command, state]
    button.click(
        job_function(gr, list(controls), run),
        inputs=list(controls.values()),
        outputs=outputs,
        api_name="enhance",
        **queued(config),
    )
    slice_index.release(
        user_errors(gr, move),
        [state, slice_index],
        [compare, uncertainty],
        concurrency_limit=None,
        show_progress="minimal",
        api_name="slice",
    )
    live_command(gr, "enhance", controls, command)


# --------------------------------------------------------------------------------------------------- the app


def build_app(config: WebConfig):
    """The Blocks of ``sinfree web``, queued: ``config.concurrency`` jobs at a time, the others wait in line."""
    gr = gradio()
    with gr.Blocks(title="sinfree", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:  # uploads kept a day
        gr.Markdown(HEADER)
        with gr.Tabs():
            generation_tab(
                gr,
                config,
                "generate",
                "Generate",
                "New images with the input's patches and composition, any size.",
                generate_controls(gr, config, "generate"),
            )
            generation_tab(
                gr,
                config,
                "retarget",
                "Retarget",
                "Another size or aspect, the layout kept.",
                generate_controls(gr, config, "retarget"),
            )
            generation_tab(
                gr, config, "symmetric", "Symmetric", "Mirror-symmetric samples.", generate_controls(gr, config, "symmetric")
            )
            generation_tab(
                gr,
                config,
                "tile",
                "Tile",
                "Seamless textures; the 2 x 2 preview shows any seam.",
                generate_controls(gr, config, "tile"),
            )
            generation_tab(
                gr, config, "analogy", "Analogy", "One image's layout drawn with another's patches.", analogy_controls(gr, config)
            )
            masked_tab(
                gr,
                config,
                "inpaint",
                "Inpaint / remove object",
                "Paint over an object: it is replaced by the rest's patches; other pixels are kept exactly.",
            )
            masked_tab(gr, config, "harmonize", "Harmonize", "Paint over a pasted region: it is blended into the picture.")
            missing = style_available(config)
            if missing is None:
                generation_tab(
                    gr, config, "style", "Style", "Restyle towards a text prompt with CLIP.", style_controls(gr, config)
                )
            else:
                with gr.Tab("Style", id="style"):
                    gr.Markdown(missing)
            enhance_tab(gr, config)
    demo.queue(default_concurrency_limit=config.concurrency)
    return demo


def launch(config: WebConfig, host: str = "127.0.0.1", port: Optional[int] = None, block: bool = True, quiet: bool = False):
    """Build and serve the app on ``host:port``, saying where (unless ``quiet``); with ``block=False`` return at once
    (the server runs in a thread), else serve until Ctrl-C. Returns (demo, local URL)."""
    gr = gradio()
    demo = build_app(config)
    Path(config.outdir).mkdir(parents=True, exist_ok=True)
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        share=False,
        inbrowser=False,
        quiet=True,
        show_error=True,
        ssr_mode=False,
        footer_links=[],
        max_file_size=f"{config.max_upload_mb:g}mb",
        allowed_paths=[str(Path(config.outdir).resolve())],
        theme=local_theme(gr),
        css=CSS,
        enable_monitoring=False,
        mcp_server=False,
    )
    if not quiet:
        print(f"sinfree web: serving on {url} (Ctrl-C stops it)", flush=True)
    if block:
        demo.block_thread()
    return demo, url
