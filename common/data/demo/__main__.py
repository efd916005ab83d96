"""`python -m hybridvision.common.data.demo [--out DIR] [--scale demo|tiny] [names...]`: generate the demo datasets."""

from hybridvision.common.cli import main_entry
from hybridvision.common.data.demo.store import main

if __name__ == "__main__":
    main_entry(main)
