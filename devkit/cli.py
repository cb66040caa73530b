"""``unifaas new``, ``build``, ``wat2wasm`` and ``toolchain``, registered into the CLI through
the ``unifaas.commands`` entry point."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from devkit import scaffold, toolchains
from devkit.errors import DevkitError
from gateway.cli import manifest
from wasm_runtime.cliargs import Commands, progress, read_file


def cmd_new(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        if not args.list:
            progress("unifaas new: give a NAME and a --template; the templates are:")
        for t in scaffold.TEMPLATE_LIST:
            ready = "installed" if toolchains.get(t.toolchain).installed() else "not installed"
            print(f"{t.name:15} {t.abi:5} {t.description}  [toolchain {ready}]")
        return 0 if args.list else 2
    template = scaffold.get(args.template)
    where = Path(args.dir or args.name)
    written = scaffold.create(template, args.name, where)
    print(f"created {where}/ ({len(written)} files) from the {template.name} template")
    toolchain = toolchains.get(template.toolchain)
    steps = [f"cd {where}"]
    if not toolchain.installed():
        steps.append(f"unifaas toolchain install {toolchain.name}")
    steps += ["unifaas build", "unifaas deploy", f"unifaas invoke {args.name} --data hello"]
    print("next:\n" + "\n".join(f"  {step}" for step in steps))
    return 0


def _manifest(args: argparse.Namespace) -> manifest.Manifest:
    path = Path(args.manifest) if args.manifest else manifest.find()
    if path is None:
        raise DevkitError(f"no {manifest.MANIFEST} here (unifaas new makes one); or --manifest")
    return manifest.load(path)


def cmd_build(args: argparse.Namespace) -> int:
    from devkit.build import build

    found = _manifest(args)
    if found.build is not None:
        progress(f"building {found.name}: {found.build.command}")
    built = build(found, quiet=args.quiet)
    print(f"built {built.path} ({built.size} bytes) in {built.seconds:.1f} s")
    return 0


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[str, int], ...]:
    """What changes when a watched file is edited, added or removed."""
    files = []
    for path in paths:
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in found:
            try:
                files.append((str(f), f.stat().st_mtime_ns))
            except OSError:
                continue  # gone since it was listed (an editor saving by rename)
    return tuple(files)


def cmd_watch(args: argparse.Namespace) -> int:
    from devkit.build import build
    from gateway.cli.main import main as unifaas

    found = _manifest(args)
    if found.build is None or not found.build.watch:
        raise DevkitError(f"{found.path}: build.watch: lists nothing to watch")
    deploy = ["deploy", "--manifest", str(found.path)]
    for flag in ("url", "state_dir"):
        if getattr(args, flag):
            deploy += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    progress(f"watching {', '.join(str(w) for w in found.build.watch)} (Ctrl-C stops)")
    last = None
    while True:
        stamp = _stamp(found.build.watch)
        if stamp != last:
            last = stamp
            try:
                built = build(found, quiet=True)
                progress(f"built {built.path.name} ({built.size} bytes, {built.seconds:.1f} s)")
                unifaas(deploy)
            except DevkitError as err:
                progress(f"unifaas watch: {err}\n(waiting for the next change)")
        time.sleep(args.interval)


def cmd_wat2wasm(args: argparse.Namespace) -> int:
    import wasmtime

    text = read_file(args.source).decode()
    try:
        wasm = wasmtime.wat2wasm(text)
    except wasmtime.WasmtimeError as err:
        raise DevkitError(f"{args.source}: {err}") from err
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_bytes(wasm)
    return 0


def cmd_toolchain_list(args: argparse.Namespace) -> int:
    for t in toolchains.TOOLCHAINS.values():
        print(f"{t.name:15} {'installed' if t.installed() else '-':10} {t.description}")
    return 0


def cmd_toolchain_install(args: argparse.Namespace) -> int:
    names = list(toolchains.TOOLCHAINS) if args.all else args.names
    if not names:
        progress("unifaas toolchain install: name one or more, or --all")
        return 2
    for name in names:
        toolchain = toolchains.get(name)
        if toolchain.installed():
            print(f"{name}: installed")
            continue
        progress(f"{name}: installing ({toolchain.description})")
        toolchain.install()
        print(f"{name}: installed")
    return 0


def register(cli: Commands) -> None:
    new = cli.command(
        "new",
        "scaffold a function from a template",
        "Create the directory NAME (or --dir) holding a working HTTP function in the "
        "template's language: its source, a unifaas.toml and a README. Then, in it: "
        "unifaas build, unifaas deploy. --list shows the templates and whether their "
        "toolchain is installed.",
    )
    new.add_argument("name", nargs="?", help="the function's name (and its directory's)")
    new.add_argument(
        "--template", "-t", default="python", help="the language (default python; see --list)"
    )
    new.add_argument("--dir", help="where to create it (default ./NAME)")
    new.add_argument("--list", action="store_true", help="list the templates")
    new.set_defaults(func=cmd_new)

    build = cli.command(
        "build",
        "build the function of ./unifaas.toml",
        "Run the [build] command of the manifest in its directory, with its toolchain's "
        "tools first on the PATH; prints the module written and its size.",
    )
    build.add_argument("--manifest", metavar="PATH", help="default ./unifaas.toml")
    build.add_argument("--quiet", "-q", action="store_true", help="show the build's output "
                       "only when it fails")  # fmt: skip
    build.set_defaults(func=cmd_build)

    watch = cli.command(
        "watch",
        "rebuild and redeploy the function of ./unifaas.toml when its sources change",
        "Build and deploy now, then again whenever a file under the manifest's build.watch "
        "paths changes (polled); a failed build is shown and the last deployed version keeps "
        "serving. Ctrl-C stops.",
    )
    watch.add_argument("--manifest", metavar="PATH", help="default ./unifaas.toml")
    watch.add_argument("--url", help="platform URL (default $UNIFAAS_URL or http://127.0.0.1:8080)")
    watch.add_argument("--state-dir", help="where to find the token (default: as for `up`)")
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between looks")
    watch.set_defaults(func=cmd_watch)

    wat = cli.command("wat2wasm", "compile WebAssembly text to a .wasm (wasmtime's)")
    wat.add_argument("source", metavar="FILE.wat")
    wat.add_argument("output", metavar="FILE.wasm")
    wat.set_defaults(func=cmd_wat2wasm)

    install = cli.command(
        "install",
        "install the toolchain of one or more languages",
        "Install what building a template's functions needs, from Debian's packages, PyPI "
        "or npm; idempotent (what is there is kept). Tools that are not Debian packages go "
        "under $UNIFAAS_TOOLCHAINS (default ~/.cache/unifaas/toolchains).",
        group="toolchain",
    )
    install.add_argument("names", nargs="*", metavar="LANG", help=", ".join(toolchains.TOOLCHAINS))
    install.add_argument("--all", action="store_true", help="every toolchain")
    install.set_defaults(func=cmd_toolchain_install)
    listing = cli.command("list", "the toolchains and which are installed", group="toolchain")
    listing.set_defaults(func=cmd_toolchain_list)
