"""Regions, decorators, statistics and compile behaviour. Nothing here imports torch at import time."""
