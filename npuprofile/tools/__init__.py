"""Tools built on sessions: ``bench``, ``profile_module`` and the demo."""
