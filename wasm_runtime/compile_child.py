"""The compile child of :mod:`wasm_runtime.compiler`: the module on stdin, its artifact on
stdout. It imports only what compiling needs (not asyncio, not the parent's module),
because every deploy that compiles pays this process's start: 35 ms of its 145 were the
parent's imports."""

from __future__ import annotations

import json
import sys

EXIT_INVALID = 3
EXIT_NO_MEMORY = 4


def main(argv: list[str]) -> int:
    from wasm_runtime.engine import precompile
    from wasm_runtime.errors import InvalidModule

    artifact_max = int(argv[0])
    wasm = sys.stdin.buffer.read()
    try:
        artifact = precompile(wasm)
    except InvalidModule as refused:
        json.dump({"reason": refused.reason, "message": refused.message}, sys.stderr)
        return EXIT_INVALID
    except MemoryError:
        return EXIT_NO_MEMORY
    if len(artifact) > artifact_max:
        message = f"the compiled module is {len(artifact)} bytes, above the limit of {artifact_max}"
        json.dump({"reason": "artifact_too_large", "message": message}, sys.stderr)
        return EXIT_INVALID
    sys.stdout.buffer.write(artifact)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
