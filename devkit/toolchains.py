"""The toolchains templates build with: what each needs, whether it is installed, the
environment its builds run in, and the script that installs it (``toolchains/NAME.sh``).

Each installs on demand (``unifaas toolchain install NAME``), idempotently, from the
registries only: Debian's packages (Rust, Go from bookworm-backports, clang and wasi-libc for
C), PyPI (Zig, componentize-py) and npm (AssemblyScript, componentize-js). Tools that are not
Debian's go under ``$UNIFAAS_TOOLCHAINS`` (default ``~/.cache/unifaas/toolchains``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from devkit.errors import ToolchainMissing

SCRIPTS = Path(str(resources.files("devkit").joinpath("toolchains")))
GO_ROOT = Path("/usr/lib/go-1.23")
COMPONENTIZE_JS = Path("node_modules/@bytecodealliance/componentize-js/src/componentize.js")


def home() -> Path:
    """Where the toolchains that are not Debian packages live."""
    given = os.environ.get("UNIFAAS_TOOLCHAINS")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "unifaas" / "toolchains"


def _unifaas_bin() -> str:
    """The directory of the running ``unifaas`` (and its venv's tools, wasm-tools among them)."""
    return str(Path(sys.executable).parent)


@dataclasses.dataclass(frozen=True)
class Toolchain:
    name: str
    description: str
    # Files that exist once it is installed.
    marks: Callable[[], tuple[Path, ...]]
    # Environment its builds get, on top of the caller's (PATH entries go first).
    paths: Callable[[], tuple[str, ...]] = lambda: ()
    extra_env: Callable[[], Mapping[str, str]] = dict

    @property
    def script(self) -> Path | None:
        path = SCRIPTS / f"{self.name}.sh"
        return path if path.exists() else None

    def installed(self) -> bool:
        return all(mark.exists() for mark in self.marks())

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        path = [*self.paths(), _unifaas_bin(), env.get("PATH", "")]
        env["PATH"] = os.pathsep.join(p for p in path if p)
        env.update(self.extra_env())
        return env

    def require(self) -> None:
        if not self.installed():
            raise ToolchainMissing(
                f"the {self.name} toolchain is not installed: unifaas toolchain install {self.name}"
            )

    def install(self) -> None:
        """Run its install script (idempotent: it installs only what is missing)."""
        if self.script is None:
            return
        env = {**os.environ, "UNIFAAS_TOOLCHAINS": str(home())}
        done = subprocess.run(["bash", str(self.script)], env=env, check=False)
        if done.returncode != 0 or not self.installed():
            raise ToolchainMissing(
                f"installing the {self.name} toolchain failed ({self.script} exited "
                f"{done.returncode})"
            )


def _venv_bin(name: str) -> str:
    return str(home() / name / "venv" / "bin")


def _python_wit() -> Path:
    return home() / "python" / "proxy-wit"


TOOLCHAINS: dict[str, Toolchain] = {
    t.name: t
    for t in (
        Toolchain("wat", "WebAssembly text: wasmtime's wat2wasm, in unifaas itself", tuple),
        Toolchain(
            "c",
            "Debian's clang, lld and wasi-libc (wasm32-wasi)",
            lambda: (Path("/usr/bin/clang"), Path("/usr/include/wasm32-wasi/stdio.h")),
        ),
        Toolchain(
            "rust",
            "Debian's rustc and cargo with the wasm32-wasi standard library",
            lambda: (Path("/usr/bin/cargo"), Path("/usr/lib/rustlib/wasm32-wasi")),
            # Debian's before any rustup toolchain, which may lack the wasm target.
            lambda: ("/usr/bin",),
            lambda: {"RUSTC": "/usr/bin/rustc"},
        ),
        Toolchain(
            "go",
            "Go 1.23 from Debian's bookworm-backports (GOOS=wasip1)",
            lambda: (GO_ROOT / "bin" / "go",),
            lambda: (str(GO_ROOT / "bin"),),
            lambda: {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOPROXY": "off"},
        ),
        Toolchain(
            "zig",
            "Zig from PyPI (ziglang), in a venv of its own",
            lambda: (Path(_venv_bin("zig")) / "python",),
            lambda: (_venv_bin("zig"),),
        ),
        Toolchain(
            "assemblyscript",
            "AssemblyScript and its WASI shim from npm",
            lambda: (home() / "assemblyscript" / "node_modules" / ".bin" / "asc",),
            lambda: (str(home() / "assemblyscript" / "node_modules" / ".bin"),),
            lambda: {"UNIFAAS_AS_SHIM": str(home() / "assemblyscript" / "node_modules")},
        ),
        Toolchain(
            "python",
            "componentize-py and the WASI WIT of spin-sdk (PyPI), in a venv of their own",
            lambda: (
                Path(_venv_bin("python")) / "componentize-py",
                home() / "python" / "proxy-wit",
            ),
            lambda: (_venv_bin("python"),),
            lambda: {"UNIFAAS_WIT": str(home() / "python" / "proxy-wit")},
        ),
        Toolchain(
            "js",
            "componentize-js and jco's WASI WIT from npm",
            lambda: (home() / "js" / "wit" / "package.wit",),
            extra_env=lambda: {
                "UNIFAAS_WIT": str(home() / "js" / "wit"),
                "UNIFAAS_COMPONENTIZE_JS": str(home() / "js" / COMPONENTIZE_JS),
            },
        ),
    )
}


def get(name: str) -> Toolchain:
    found = TOOLCHAINS.get(name)
    if found is None:
        raise ToolchainMissing(f"no toolchain {name!r}; known: {', '.join(TOOLCHAINS)}")
    return found
