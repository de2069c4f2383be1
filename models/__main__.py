"""``python -m models INPUT -o OUTPUT``: the model's own CLI (same as ``dmask mask``)."""

from models.cli import main

main()
