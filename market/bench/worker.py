"""``python -m market.bench.worker``: one load-generating client process of ``market bench``."""

from market.bench.clients import main

if __name__ == "__main__":
    main()
