"""Prefect blocks: ``DuneCredentials`` (register with ``prefect block register -m blocks.dune``)."""
