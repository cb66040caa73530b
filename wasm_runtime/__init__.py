"""WebAssembly execution shared by host and guest: engine, runner, ABIs, wire protocol, agent."""
