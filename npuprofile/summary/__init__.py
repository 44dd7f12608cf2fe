"""Summaries: one data model of what a profile found, and its renderers (text, JSON, CSV, HTML)."""
