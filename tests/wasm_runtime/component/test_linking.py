"""Sorting a component's imports: granted (any WASI 0.2 patch), denied (known, not granted),
unknown (refused at deploy)."""

from __future__ import annotations

from wasm_runtime.component.linking import interfaces, sort_imports


def test_imports_are_sorted_into_granted_denied_and_unknown() -> None:
    sorted_ = sort_imports(
        [
            "wasi:io/streams@0.2.9",
            "wasi:http/types@0.2.0",
            "wasi:cli/environment@0.2.3",
            "wasi:sockets/tcp@0.2.0",
            "wasi:http/outgoing-handler@0.2.9",
            "fermyon:spin/key-value@2.0.0",
            "fermyon:spin/llm@2.0.0",
            "spin:postgres/postgres@4.0.0",
            "wasi:keyvalue/store@0.2.0-draft2",
            "wasi:http/types@0.3.0",
            "acme:thing/widget@1.0.0",
        ]
    )
    assert sorted_.granted == (
        "fermyon:spin/key-value@2.0.0",
        "wasi:cli/environment@0.2.3",
        "wasi:http/outgoing-handler@0.2.9",
        "wasi:http/types@0.2.0",
        "wasi:io/streams@0.2.9",
        "wasi:keyvalue/store@0.2.0-draft2",
    )
    assert sorted_.denied == (
        "fermyon:spin/llm@2.0.0",
        "spin:postgres/postgres@4.0.0",
        "wasi:sockets/tcp@0.2.0",
    )
    # WASI 0.3 is another ABI (async), not a newer patch of 0.2.
    assert sorted_.unknown == ("acme:thing/widget@1.0.0", "wasi:http/types@0.3.0")


def test_every_interface_is_declared_once_with_named_functions() -> None:
    found = interfaces()
    assert {"wasi:io/streams", "wasi:http/types", "wasi:cli/stdout", "wasi:random/random"} <= set(
        found
    )
    for name, iface in found.items():
        assert iface.name == name
        assert all(not f.startswith(" ") and f for f in iface.functions)
