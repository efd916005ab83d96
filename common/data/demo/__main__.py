"""`python -m common.data.demo [--out DIR] [--scale demo|tiny] [names...]`: generate the demo datasets."""

from common.cli import main_entry
from common.data.demo.store import main

if __name__ == "__main__":
    main_entry(main)
