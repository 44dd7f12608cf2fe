"""Backend adapters: one module per device family."""
