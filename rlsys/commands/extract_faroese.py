"""`rlsys extract-faroese --out FILE`: English->Faroese phrase pairs from Debian's message catalogues."""

from __future__ import annotations

import json

NAME, HELP = "extract-faroese", "English->Faroese phrase pairs from Debian's message catalogues"


def add_arguments(p) -> None:
    p.add_argument("--out", required=True, help="JSONL file to write (must not exist)")


def run(args) -> int:
    from rlsys.data.faroese_messages import write_pairs

    print(json.dumps(write_pairs(args.out)))
    return 0
