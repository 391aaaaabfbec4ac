"""The package's sources as they are on disk: a digest that names a version of the code (numba's cache folder, a
local worker server's freshness)."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: the package's folder
PACKAGE = Path(__file__).resolve().parents[1]


def numba_cache_dir(digest: str) -> Path:
    """Where numba keeps the compiled kernels of the sources with ``digest``: a folder per version of the sources.
    Numba renews a kernel's cache when the kernel's own file changes, but not when a function it inlines from another
    module does (``sim.state.rng``'s draws, say), so after an update or a change of branch a stale kernel could give
    other random numbers; a folder per version cannot."""
    return PACKAGE / "__pycache__" / f"numba-{digest[:16]}"


def sources_digest() -> str:
    """A digest of every source file of the package as it is on disk now (what a fresh import would run)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
