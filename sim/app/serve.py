"""Start Solara's server for the app, offline: ``python -m sim.app.serve [solara run options]`` (``sim app`` runs it).

Solara serves its front end's scripts and fonts from a cache folder that the solara-assets package fills, and on a
miss it downloads the file from a CDN into that folder; asked for a folder there, it deletes the folder first. Here a
miss is a 404: nothing is fetched from the internet and nothing in the folder is ever deleted or written.
"""

from __future__ import annotations

import pathlib
import sys


def offline_path(base_cache_dir: pathlib.Path, path: str) -> pathlib.Path:
    """The cached file for ``path`` (as Solara names it), or FileNotFoundError: never a download, never a deletion."""
    from solara.server.utils import path_is_child_of

    parts = path.replace("\\", "/").split("/")
    cache_path = base_cache_dir / (path if len(parts) != 1 else pathlib.Path(path) / "__main.js")
    if not path_is_child_of(cache_path, base_cache_dir):
        raise PermissionError("outside the asset folder")
    if not cache_path.is_file():
        raise FileNotFoundError(f"{path}: not among the installed assets (the app does not fetch from the internet)")
    return cache_path


def refuse_download(url: str) -> bytes:
    raise FileNotFoundError(f"{url}: the app does not fetch from the internet")


def patch_solara() -> None:
    """Make Solara's asset proxy serve installed files only (see the module's docstring). Before the server module
    is imported (it takes ``get_path`` from ``cdn_helper`` then, and sets up the app from the environment)."""
    import solara.server.cdn_helper as cdn

    assert "solara.server.starlette" not in sys.modules, "patch before the server is imported"
    cdn.get_path = offline_path
    cdn.fetch_from_cdn = refuse_download


def main(argv: list[str]) -> None:
    patch_solara()
    from solara.__main__ import main as solara_main

    sys.argv = ["solara", "run", *argv]
    solara_main()


if __name__ == "__main__":
    main(sys.argv[1:])
