"""The policy core: rules, checks, the engine and its verdict; pure, no I/O."""
