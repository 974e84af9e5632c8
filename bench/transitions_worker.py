"""``python -m bench.transitions_worker``: ``searchhub worker`` with the indexing step emptied.

For the pipeline's "transitions only" figure: the same arq traffic, claims, leases and state moves
(including the completing statement and the document's advance), but no extraction and no search
passages written. Benchmarks only; nothing else imports it.
"""

from __future__ import annotations

import sys

from searchhub.cli import main
from worker import pipeline


def _no_index(source: pipeline.Source, config: str) -> pipeline.IndexEntry:
    return pipeline.IndexEntry(
        document_id=source.document_id, version=source.version, title=source.title, passages=[], config=config
    )


if __name__ == "__main__":
    pipeline.run = _no_index
    sys.exit(main(["worker"]))
