"""``sinfree web``: every application in the browser (Gradio, the ``web`` extra).

``handlers`` holds the jobs (each one the ``sinfree`` command its tab shows, run by the command line's own code)
and imports no gradio; ``app`` lays out the tabs and serves them (``launch``).
"""
