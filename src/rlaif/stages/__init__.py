"""One stage per module; each reads files in a run folder and writes files there."""
