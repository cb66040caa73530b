"""The benchmark baseline: a minimal FastAPI app running one module in-process with wasmtime.

Same HTTP stack as the gateway (FastAPI on uvicorn), same runner, no VM, no
Redis, no scheduler: what is left of the platform's latency above this is the
price of the VM wall and the platform's bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response

from wasm_runtime.engine import precompile
from wasm_runtime.runner import FunctionRuntime
from wasm_runtime.types import Invocation


def create_baseline_app(wasm: bytes) -> FastAPI:
    runtime = FunctionRuntime()
    fn = runtime.load(precompile(wasm))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Closed here: after a graceful stop uvicorn raises SIGTERM again, and a process
        # ended by a signal runs no exit handlers (its work dir stayed in /dev/shm).
        yield
        runtime.close()

    app = FastAPI(title="unifaas baseline", lifespan=lifespan)

    @app.post("/fn/{name}")
    async def invoke(request: Request, name: str) -> Response:
        body = await request.body()
        # A worker thread, as the agent does, so the event loop stays free.
        result = await asyncio.to_thread(runtime.invoke, fn, Invocation(stdin=body))
        return Response(
            result.stdout,
            status_code=200 if result.exit_code == 0 else 500,
            headers={"X-Exit-Code": str(result.exit_code)},
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="serve one module in-process (bench baseline)")
    parser.add_argument("wasm")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_baseline_app(Path(args.wasm).read_bytes())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
