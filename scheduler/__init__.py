"""Function registry, warm pool and placement (built on unikernel's MicroVM API)."""
