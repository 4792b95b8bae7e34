"""Gradio entry point (also the Hugging Face Spaces ``app_file``)."""
import sys

from composer.ui.app import build_app, launch_kwargs, queue

demo = build_app()

if __name__ == "__main__":
    kwargs = launch_kwargs()
    try:
        queue(demo).launch(**kwargs)
    except OSError as exc:  # most often: the port is taken by another server
        print(f"error: cannot serve on {kwargs['server_name']}:{kwargs['server_port']} ({exc}); "
              "stop the other server or set GRADIO_SERVER_PORT", file=sys.stderr)
        sys.exit(1)
