"""node-fleet's tooling: the CLI, local invoke, the demo, the embedded stack and the simulator. Never deployed."""
