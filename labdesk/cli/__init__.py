"""Command-line front end: every core step, headless."""
