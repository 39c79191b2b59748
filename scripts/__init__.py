"""The ``nextbest`` command line (``nextbest.scripts.cli:main``)."""
