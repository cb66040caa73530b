"""unifaas.toml: parsed into what deploy sends, every mistake one line naming file and field,
secrets read from where it points and never from the file itself."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.cli import manifest
from gateway.cli.commands import _with_manifest, deploy_config
from gateway.cli.main import build_parser
from gateway.errors import ManifestError

GOOD = """
name = "hello"

[build]
command = "make"
output = "build/hello.wasm"
toolchain = "c"
watch = ["src"]

[function]
abi = "wagi"
timeout_s = 2.5
memory_mib = 32
public = false
files = "static"
allow_hosts = ["example.com:443"]
kv_max_keys = 10

[function.env]
GREETING = "hi"

[secrets]
TOKEN = { env = "HELLO_TOKEN" }
KEY = { file = "key.txt" }
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "static").mkdir(exist_ok=True)
    path = tmp_path / manifest.MANIFEST
    path.write_text(text)
    return path


def test_a_manifest_becomes_a_deploys_fields(tmp_path: Path) -> None:
    found = manifest.load(write(tmp_path, GOOD))
    assert found.name == "hello"
    assert found.build is not None
    assert (found.build.command, found.build.toolchain) == ("make", "c")
    assert found.build.output == tmp_path / "build" / "hello.wasm"
    assert found.build.watch == (tmp_path / "src",)
    assert found.config == {
        "abi": "wagi",
        "timeout_s": 2.5,
        "memory_mib": 32,
        "public": False,
        "allow_hosts": ["example.com:443"],
        "kv_max_keys": 10,
        "env": {"GREETING": "hi"},
    }
    assert found.files == tmp_path / "static"
    assert found.secrets == {"TOKEN": {"env": "HELLO_TOKEN"}, "KEY": {"file": "key.txt"}}


def test_secrets_are_read_from_where_they_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = manifest.load(write(tmp_path, GOOD))
    with pytest.raises(ManifestError, match=r"secrets\.TOKEN: the environment variable"):
        found.secret_values()
    monkeypatch.setenv("HELLO_TOKEN", "t0k3n")
    with pytest.raises(ManifestError, match=r"secrets\.KEY: cannot read key\.txt"):
        found.secret_values()
    (tmp_path / "key.txt").write_text("s3cret\n")
    assert found.secret_values() == {"TOKEN": "t0k3n", "KEY": "s3cret"}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[build]\ncommand = "x"\noutput = "y"', "name"),
        ('name = "a"\nnmae = "b"', "nmae"),
        ('name = "a"\n[build]\noutput = "y"', "build.command"),
        ('name = "a"\n[function]\ntimeout_s = "10"', "function.timeout_s"),
        ('name = "a"\n[function]\npublic = 1', "function.public"),
        ('name = "a"\n[function]\nmemory_mib = true', "function.memory_mib"),
        ('name = "a"\n[function]\nfiles = "nowhere"', "function.files"),
        ('name = "a"\n[function]\nmin_wram = 1', "function.min_wram"),
        ('name = "a"\n[function.env]\nA = 1', "function.env"),
        ('name = "a"\n[secrets]\nKEY = "the value itself"', "secrets.KEY"),
        ('name = "a"\n[secrets]\nKEY = { vault = "x" }', "secrets.KEY"),
        ('name = "a"\nname = "b"', "not valid TOML"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_file_and_field(
    tmp_path: Path, text: str, field: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        manifest.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}")
    assert "\n" not in message.split(": ", 2)[1]


def test_deploy_takes_the_manifest_and_flags_override_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "hello.wasm").write_bytes(b"\0asm")
    monkeypatch.chdir(tmp_path)

    def parsed(*argv: str) -> argparse.Namespace:
        return _with_manifest(build_parser().parse_args(["deploy", *argv]))

    args = parsed("--memory", "48")
    assert (args.name, args.module, args.files) == (
        "hello",
        str(tmp_path / "build" / "hello.wasm"),
        str(tmp_path / "static"),
    )
    assert {**args.manifest_config, **deploy_config(args)}["memory_mib"] == 48
    assert args.manifest_secrets is not None  # read when it is sent
    # NAME and FILE.wasm given: no manifest is read.
    assert not hasattr(parsed("other", "x.wasm"), "manifest_config")
    assert parsed("--secret", "A=1").manifest_secrets is None  # flags replace them
    assert parsed("--manifest", str(path), "renamed").name == "renamed"
