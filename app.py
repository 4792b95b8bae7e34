"""Gradio entry point (also the Hugging Face Spaces ``app_file``)."""
from composer.ui.app import build_app, launch_kwargs

demo = build_app()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4).launch(**launch_kwargs())
